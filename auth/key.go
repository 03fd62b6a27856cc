package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
)

// minRSABits is the smallest RSA modulus accepted. Smaller keys are within
// reach of factoring, so a token "signed" by one proves little.
const minRSABits = 2048

// parsePublicKey decodes pemText and returns the key with the one JWT
// algorithm it may verify. Every error wraps ErrInvalidConfig and names the
// problem, because the operator reading it has only the config file to go on.
func parsePublicKey(pemText string) (key any, alg string, err error) {
	block, rest := pem.Decode([]byte(pemText))
	if block == nil {
		return nil, "", fmt.Errorf("%w: PublicKeyPEM holds no PEM block (expected -----BEGIN PUBLIC KEY-----)", ErrInvalidConfig)
	}
	// A second block usually means two keys were pasted; picking one silently
	// could verify against the wrong key.
	if next, _ := pem.Decode(rest); next != nil {
		return nil, "", fmt.Errorf("%w: PublicKeyPEM holds more than one PEM block (%q then %q); give exactly one public key", ErrInvalidConfig, block.Type, next.Type)
	}

	var pub any
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		cert, err = x509.ParseCertificate(block.Bytes)
		if err == nil {
			pub = cert.PublicKey
		}
	default:
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return nil, "", fmt.Errorf("%w: PublicKeyPEM holds a %q block; configure the public key, never the private one", ErrInvalidConfig, block.Type)
		}
		return nil, "", fmt.Errorf("%w: PublicKeyPEM holds a %q block; want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", ErrInvalidConfig, block.Type)
	}
	if err != nil {
		return nil, "", fmt.Errorf("%w: PublicKeyPEM %q block does not parse: %w", ErrInvalidConfig, block.Type, err)
	}

	switch k := pub.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < minRSABits {
			return nil, "", fmt.Errorf("%w: RSA public key has %d bits; at least %d are required", ErrInvalidConfig, bits, minRSABits)
		}
		return k, "RS256", nil
	case *ecdsa.PublicKey:
		// ES256 is defined over P-256 only; ES384/ES512 keys are refused
		// rather than mapped so that one config value never means two
		// algorithms.
		if k.Curve != elliptic.P256() {
			return nil, "", fmt.Errorf("%w: ECDSA public key is on curve %s; only P-256 (ES256) is supported", ErrInvalidConfig, k.Curve.Params().Name)
		}
		return k, "ES256", nil
	default:
		return nil, "", fmt.Errorf("%w: unsupported public key type %T; want RSA (RS256) or ECDSA P-256 (ES256)", ErrInvalidConfig, pub)
	}
}
