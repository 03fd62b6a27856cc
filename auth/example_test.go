package auth_test

import (
	"errors"
	"fmt"
	"net/http/httptest"

	"github.com/golang-jwt/jwt/v5"
	"github.com/webinate/broker/auth"
)

// A broker built with an HS256 secret identifies the user of a WebSocket
// handshake from a token in the query string, and refuses a request with no
// token when Required is set.
func Example() {
	v, err := auth.New(auth.Config{HS256Secret: "shared-secret-from-config", Required: true})
	if err != nil {
		panic(err)
	}

	// The identity provider, not the broker, would normally mint this.
	token, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice"}).
		SignedString([]byte("shared-secret-from-config"))

	r := httptest.NewRequest("GET", "/ws?token="+token, nil)
	user, err := v.Identify(r)
	fmt.Println(user, err)

	_, err = v.Identify(httptest.NewRequest("GET", "/ws", nil))
	fmt.Println(errors.Is(err, auth.ErrMissingToken))
	// Output:
	// alice <nil>
	// true
}
