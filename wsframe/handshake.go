package wsframe

import (
	"crypto/sha1" //nolint:gosec // RFC 6455 section 4.2.2 defines the accept key with SHA-1
	"encoding/base64"
	"strings"
)

// acceptGUID is the constant RFC 6455 (section 1.3) appends to the client's
// key: it proves the server read the handshake as WebSocket.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// AcceptKey is the Sec-WebSocket-Accept value for a handshake's
// Sec-WebSocket-Key: the server sends it, the client checks it.
func AcceptKey(key string) string {
	h := sha1.New()
	h.Write([]byte(key))
	h.Write([]byte(acceptGUID))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// HeaderHasToken reports whether token is one of the comma-separated
// tokens in values, one header's field values (http.Header.Values),
// compared case-insensitively: "Connection: keep-alive, Upgrade" has the
// token "upgrade", as browsers send it. It takes the values rather than
// the header so that this package needs no net/http.
func HeaderHasToken(values []string, token string) bool {
	for _, v := range values {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
