package netdev

import (
	"errors"

	"github.com/svcpath/kubectl-svcpath/pkg/internal/iprjson"
)

// Sentinel errors of the package. Test them with errors.Is.
var (
	// ErrMalformed means the input is not the JSON iproute2 prints: a syntax
	// error, or a document that is not an array of objects.
	ErrMalformed = iprjson.ErrMalformed
	// ErrNotFound means no interface (or no pod interface) matched.
	ErrNotFound = errors.New("not found")
	// ErrAmbiguous means several interfaces matched where one was expected.
	ErrAmbiguous = errors.New("ambiguous")
	// ErrNoAddress means no address fits the requested scope, as when the
	// kernel's inet_select_addr returns 0 (MASQUERADE then drops: "ate my
	// IP address").
	ErrNoAddress = errors.New("no suitable source address")
)
