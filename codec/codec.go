package codec

import (
	"strconv"
	"sync"
	"unsafe"

	"github.com/bytedance/sonic/ast"
)

// Event types of the protocol (PROTOCOL.md, "Event types"). They are untyped
// constants so they compare directly with the int EventType fields.
const (
	// Login is sent by the server when a user logs in.
	Login = 1
	// Logout is sent by the server when a user logs out.
	Logout = 2
	// Activated is sent by the server when a user account is activated.
	Activated = 3
	// Removed is sent by the server when a user account is removed.
	Removed = 4
	// FileUploaded is sent by the server when a user uploads a file.
	FileUploaded = 5
	// FileRemoved is sent by the server when a file is removed.
	FileRemoved = 6
	// BucketUploaded is sent by the server when a bucket is created.
	BucketUploaded = 7
	// BucketRemoved is sent by the server when a bucket is removed.
	BucketRemoved = 8
	// MetaRequest is sent by clients (get/set user meta data) and answered
	// by a backend.
	MetaRequest = 9
	// Echo is sent by clients and answered by the broker.
	Echo = 10
	// TokenRefresh is sent by clients with a fresh JWT, answered by the
	// broker with the new expiry, and sent by the broker shortly before a
	// connection's token expires.
	TokenRefresh = 11
)

// Kind is what a client message asks for.
type Kind uint8

const (
	// KindInvalid is the zero value so that a forgotten classification is
	// never mistaken for a valid one. Message.Reason says why.
	KindInvalid Kind = iota
	// KindEcho is an echo (10): answer the sender, or everyone when
	// Message.Broadcast is set.
	KindEcho
	// KindMeta is a client's MetaRequest (9), to be forwarded to a backend.
	KindMeta
	// KindTokenRefresh is a client's TokenRefresh (11): a new token for
	// the connection, in the string member "token".
	KindTokenRefresh
	// KindServerEvent is a server event (1..9) sent by a backend, to be
	// delivered as published.
	KindServerEvent
)

// String returns the kind's name, for logs and test failures.
func (k Kind) String() string {
	switch k {
	case KindInvalid:
		return "invalid"
	case KindEcho:
		return "echo"
	case KindMeta:
		return "meta"
	case KindTokenRefresh:
		return "token-refresh"
	case KindServerEvent:
		return "server-event"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Message is the classification of one inbound text message.
type Message struct {
	// Kind is what the message asks for; KindInvalid when it is rejected.
	Kind Kind
	// EventType is the integer eventType read from the message, or 0 when
	// none could be read (invalid JSON, not an object, missing, not an
	// integer, duplicated). It is the N of the {"eventType":N,"error":...}
	// reply.
	EventType int
	// Broadcast is true for an echo with "broadcast": true.
	Broadcast bool
	// Reason is, for KindInvalid only, a human-readable reason suitable for
	// the error reply, such as "invalid JSON" or "unknown eventType 42".
	Reason string
}

var nodePool = sync.Pool{New: func() any { return new(ast.Node) }}

// PeekEventType reads the top-level integer "eventType" from raw JSON bytes
// without validating or decoding the rest of the message: it is for callers
// that only need a routing hint or already trust the bytes. It uses sonic's
// searcher, which skips unrelated values with its fast, non-validating skip;
// ValidateJSON is left on because in this sonic version it only validates
// the value found (not the whole document), so a malformed number is caught
// while the rest stays unchecked. With duplicate keys the first one wins
// (ClassifyClient and friends reject duplicates instead).
//
// Because it relies on sonic, the peek may read a few bytes past len(msg)
// when the input ends inside true/false/null (sonic v1.15.5 reads those as
// whole words without a length check). msg must therefore be ordinary Go
// memory, as network buffers are. (sonic.Valid, used by classification, does
// the same read; validate makes sure it cannot change a result.)
//
// Errors: ErrInvalidJSON if the scan hits malformed JSON, ErrNotObject if the
// document is not an object, ErrNoEventType if there is no top-level
// eventType or it is not an integer that fits an int.
func PeekEventType(msg []byte) (int, error) {
	i := skipSpace(msg, 0)
	if i >= len(msg) {
		return 0, ErrInvalidJSON
	}
	if msg[i] != '{' {
		switch c := msg[i]; {
		case c == '[' || c == '"' || c == '-' || c == 't' || c == 'f' || c == 'n' || (c >= '0' && c <= '9'):
			return 0, ErrNotObject
		}
		return 0, ErrInvalidJSON
	}
	// The string aliases msg; it does not outlive this call (the node's raw
	// text is parsed below and dropped).
	s := ast.NewSearcher(unsafe.String(unsafe.SliceData(msg), len(msg)))
	// ast.Node's methods take pointer receivers that make a local node
	// escape; recycling the node keeps the peek allocation-free.
	n := nodePool.Get().(*ast.Node)
	defer func() { *n = ast.Node{}; nodePool.Put(n) }()
	var err error
	if *n, err = s.GetByPath("eventType"); err != nil {
		if err == ast.ErrNotExist {
			return 0, ErrNoEventType
		}
		return 0, ErrInvalidJSON
	}
	if n.TypeSafe() != ast.V_NUMBER {
		return 0, ErrNoEventType
	}
	raw, err := n.Raw()
	if err != nil {
		return 0, ErrInvalidJSON
	}
	et, ok := parseInt(unsafe.Slice(unsafe.StringData(raw), len(raw)))
	if !ok {
		return 0, ErrNoEventType
	}
	// sonic validates the number it found but not what follows it, so
	// {"eventType":1x} would read as 1. raw aliases msg, which gives its
	// end offset; the value must be followed by ',' or '}'.
	// The range check keeps this safe should sonic ever return a copy.
	off := uintptr(unsafe.Pointer(unsafe.StringData(raw))) - uintptr(unsafe.Pointer(unsafe.SliceData(msg)))
	if off <= uintptr(len(msg)-len(raw)) {
		end := skipSpace(msg, int(off)+len(raw))
		if end >= len(msg) || (msg[end] != ',' && msg[end] != '}') {
			return 0, ErrInvalidJSON
		}
	}
	return et, nil
}

// ClassifyClient classifies a message from an ordinary client socket. The
// whole message must be strictly valid JSON, an object, with an integer
// eventType. Clients may send only MetaRequest (9, KindMeta) and Echo (10,
// KindEcho: "message" must be a string, "broadcast" is an optional boolean or
// null). Types 1..8 are server-only; anything else is unknown. An "error"
// field, if present, must be a string or null. Rejections come back as
// KindInvalid with a Reason; see the package documentation for duplicates.
func ClassifyClient(msg []byte) Message {
	f, et, p := inspect(msg)
	if p != pNone {
		return invalid(p, et, f.dup)
	}
	switch {
	case et == MetaRequest:
		if p = f.checkError(); p == pNone {
			return Message{Kind: KindMeta, EventType: et}
		}
	case et == Echo:
		return echo(&f)
	case et == TokenRefresh:
		if p = f.checkError(); p == pNone {
			return Message{Kind: KindTokenRefresh, EventType: et}
		}
	case et >= Login && et <= BucketRemoved:
		p = pNotFromClient
	default:
		p = pUnknownType
	}
	return invalid(p, et, -1)
}

// ClassifyBackend classifies a message from a backend socket. It applies the
// same syntax rules as ClassifyClient, but types 1..9 are server events
// (KindServerEvent), validated like publish API elements (ValidateEvent), and
// 10 is an echo with the echo rules.
func ClassifyBackend(msg []byte) Message {
	f, et, p := inspect(msg)
	if p != pNone {
		return invalid(p, et, f.dup)
	}
	switch {
	case et >= Login && et <= MetaRequest:
		if p = f.checkError(); p == pNone {
			return Message{Kind: KindServerEvent, EventType: et}
		}
	case et == Echo:
		return echo(&f)
	case et == TokenRefresh:
		p = pNotPublishable // a connection's own identity: clients only
	default:
		p = pUnknownType
	}
	return invalid(p, et, -1)
}

// ValidateEvent validates one server event object, as published through the
// publish API or a backend socket: strictly valid JSON in valid UTF-8, an
// object, integer eventType 1..9, "error" a string or null if present, no
// duplicated meaningful key. The returned error wraps one of the sentinels.
func ValidateEvent(ev []byte) error {
	if p := validate(ev); p != pNone {
		return newError(-1, p, 0, -1)
	}
	i := skipSpace(ev, 0)
	if ev[i] != '{' { // validate rejects blank input, so ev[i] exists
		if !strictStrings(ev) {
			return ErrInvalidJSON
		}
		return ErrNotObject
	}
	_, err := checkEvent(ev, i, -1)
	return err
}

// checkEvent validates the event object at ev[i] == '{' in a document sonic
// has already validated, and returns the index just past it. SplitPublish
// uses it to validate each array element in place, in one pass.
func checkEvent(ev []byte, i, index int) (int, error) {
	f, end := walkObject(ev, i)
	if end < 0 {
		return -1, newError(index, pInvalidJSON, 0, -1)
	}
	et, p := f.eventTypeOf()
	if p == pNone {
		switch {
		case et == Echo || et == TokenRefresh:
			p = pNotPublishable
		case et < Login || et > MetaRequest:
			p = pUnknownType
		default:
			p = f.checkError()
		}
	}
	if p != pNone {
		return -1, newError(index, p, et, f.dup)
	}
	return end, nil
}

// inspect validates msg, checks it is an object and reads its fields and
// integer eventType.
func inspect(msg []byte) (f fields, et int, p problem) {
	f.dup = -1
	if p = validate(msg); p != pNone {
		return f, 0, p
	}
	i := skipSpace(msg, 0)
	if msg[i] != '{' { // validate rejects blank input, so msg[i] exists
		if !strictStrings(msg) {
			return f, 0, pInvalidJSON
		}
		return f, 0, pNotObject
	}
	f, end := walkObject(msg, i)
	if end < 0 {
		return f, 0, pInvalidJSON
	}
	et, p = f.eventTypeOf()
	return f, et, p
}

// eventTypeOf reads the integer eventType. A duplicate of another meaningful
// key is reported after the type is read so the error reply can carry it.
func (f *fields) eventTypeOf() (int, problem) {
	if f.dup == keyEventType {
		return 0, pDuplicate
	}
	et, ok := parseInt(f.eventType)
	if !ok {
		return 0, pNoEventType
	}
	if f.dup >= 0 {
		return et, pDuplicate
	}
	return et, pNone
}

func echo(f *fields) Message {
	p := f.checkError()
	if p == pNone {
		p = f.checkEcho()
	}
	if p != pNone {
		return invalid(p, Echo, -1)
	}
	return Message{Kind: KindEcho, EventType: Echo, Broadcast: string(f.broadcast) == "true"}
}

func invalid(p problem, et, dup int) Message {
	return Message{Kind: KindInvalid, EventType: et, Reason: reasonText(p, et, dup)}
}

func newError(index int, p problem, et, dup int) error {
	if index < 0 {
		// These reasons are exactly the sentinel's text: return the
		// sentinel itself rather than allocate an equal wrapper.
		switch p {
		case pInvalidJSON, pInvalidUTF8, pNotObject, pNoEventType:
			return sentinel(p)
		}
	}
	return &reasonError{index: index, reason: reasonText(p, et, dup), kind: sentinel(p)}
}

func reasonText(p problem, et, dup int) string {
	switch p {
	case pInvalidJSON:
		return "invalid JSON"
	case pInvalidUTF8:
		return "invalid UTF-8"
	case pNotObject:
		return "message is not a JSON object"
	case pDuplicate:
		if dup >= 0 && dup < len(duplicateReasons) {
			return duplicateReasons[dup]
		}
		return "duplicate key"
	case pNoEventType:
		return "missing integer eventType"
	case pNotFromClient:
		return "eventType " + strconv.Itoa(et) + " may not be sent by clients"
	case pNotPublishable:
		return "eventType " + strconv.Itoa(et) + " may not be published"
	case pUnknownType:
		return "unknown eventType " + strconv.Itoa(et)
	case pErrorField:
		return "error must be a string or null"
	case pEchoMessage:
		return "echo requires a string message"
	case pBroadcast:
		return "broadcast must be a boolean"
	}
	return "invalid message"
}

func sentinel(p problem) error {
	switch p {
	case pInvalidJSON:
		return ErrInvalidJSON
	case pInvalidUTF8:
		return ErrInvalidUTF8
	case pNotObject:
		return ErrNotObject
	case pDuplicate:
		return ErrDuplicateKey
	case pNoEventType:
		return ErrNoEventType
	case pNotFromClient, pNotPublishable, pUnknownType:
		return ErrEventType
	}
	return ErrField
}
