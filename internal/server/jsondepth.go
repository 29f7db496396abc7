package server

import (
	"fmt"
	"strings"

	"github.com/decision-fabric/fabric/internal/redact"
)

// MaxBodyDepth bounds the nesting of objects and arrays in a REST request body:
// MaxJSONDepth for the open JSON it may carry plus room for the request's own
// messages around it. It is checked on the raw bytes before the gateway decodes
// them, so that a body nested thousands deep is a 400 naming the limit instead of
// a message the gRPC decoder refuses as INTERNAL (its recursion limit).
const MaxBodyDepth = MaxJSONDepth + 16

// pathKeys is how many object keys of the path an error names.
const pathKeys = 4

// CheckJSONDepth reports an error when the JSON text data nests objects and arrays
// deeper than max, naming the limit and where it was crossed ("JSON nesting depth
// exceeds 48 at manifest.parameters.d.a…"). It reads data once, without recursion
// and without decoding it; it does not validate it (the decoder does that), and
// never panics, whatever data is.
func CheckJSONDepth(data []byte, maxDepth int) error {
	stack := make([]openJSON, 0, 16)
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '"':
			start := i + 1
			for i++; i < len(data) && data[i] != '"'; i++ {
				if data[i] == '\\' {
					i++
				}
			}
			if n := len(stack); n > 0 && stack[n-1].obj && stack[n-1].expected {
				stack[n-1].key = [2]int{start, min(i, len(data))}
				stack[n-1].expected = false
			}
		case '{', '[':
			if len(stack) == maxDepth {
				return fmt.Errorf("JSON nesting depth exceeds %d at %s", maxDepth, depthPath(data, stack))
			}
			stack = append(stack, openJSON{obj: c == '{', expected: c == '{'})
		case '}', ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case ',':
			if n := len(stack); n > 0 && stack[n-1].obj {
				stack[n-1].expected = true
			}
		}
	}
	return nil
}

// openJSON is an object or array CheckJSONDepth is inside.
type openJSON struct {
	obj      bool
	key      [2]int // the current key's bytes in data, inside the quotes
	expected bool   // the next string is a key
}

// depthPath names where the limit was crossed: the first pathKeys keys of the
// open objects (array elements as "[]"), redacted and clipped.
func depthPath(data []byte, stack []openJSON) string {
	var parts []string
	for _, o := range stack {
		if len(parts) == pathKeys {
			parts = append(parts, "…")
			break
		}
		switch {
		case !o.obj:
			parts = append(parts, "[]")
		case o.key[1] > o.key[0]:
			parts = append(parts, redact.Echo(string(data[o.key[0]:o.key[1]])))
		default:
			parts = append(parts, "{}")
		}
	}
	if len(parts) == 0 {
		return "the top level"
	}
	return strings.Join(parts, ".")
}
