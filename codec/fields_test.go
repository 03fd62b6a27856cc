package codec

import (
	"encoding/json"
	"testing"
)

func TestFieldHelpers(t *testing.T) {
	obj := []byte(` { "eventType" : 9, "user\u006eame":"bob", "val":{"clientId":"inner"}, "clientId":"c7" } `)
	if !HasField(obj, "clientId") || !HasField(obj, "username") || HasField(obj, "inner") {
		t.Fatal("HasField")
	}
	if v, ok := StringField(obj, "username"); !ok || v != "bob" {
		t.Fatalf("username %q %v", v, ok)
	}
	if v, ok := StringField(obj, "clientId"); !ok || v != "c7" {
		t.Fatalf("clientId %q %v", v, ok)
	}
	if _, ok := StringField(obj, "eventType"); ok {
		t.Fatal("a number is not a string")
	}
	if v, ok := StringField([]byte(`{"u":"a\"b\u00e9"}`), "u"); !ok || v != "a\"bé" {
		t.Fatalf("escaped %q", v)
	}
	if v, _ := StringField([]byte(`{"u":"first","u":"last"}`), "u"); v != "last" {
		t.Fatalf("duplicate: %q, want the last like JSON.parse", v)
	}

	without := AppendWithoutField(nil, obj, "clientId")
	if string(without) != `{"eventType" : 9,"user\u006eame":"bob","val":{"clientId":"inner"}}` {
		t.Fatalf("without: %s", without)
	}
	with := AppendWithField(nil, []byte(` {"eventType":9, "property":"age"}`), "clientId", `c"1`)
	if string(with) != `{"clientId":"c\"1","eventType":9, "property":"age"}` {
		t.Fatalf("with: %s", with)
	}
	if got := AppendWithField(nil, []byte(`{}`), "k", "v"); string(got) != `{"k":"v"}` {
		t.Fatalf("empty object: %s", got)
	}
	for _, b := range [][]byte{with, without, AppendWithoutField(nil, []byte(`{"clientId":1}`), "clientId")} {
		if !json.Valid(b) {
			t.Fatalf("invalid JSON %s", b)
		}
	}
}
