package redact

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
)

// NewHandler returns a slog.Handler that redacts every record before passing
// it to next:
//
//   - the message is redacted with String;
//   - an attribute whose key is a SensitiveKey (secret or named PII) gets the
//     value Placeholder whatever its type, groups included; so does every
//     attribute under a group opened with WithGroup, or nested with
//     slog.Group, under such a key;
//   - string values, error values (their Error() text), fmt.Stringer values
//     (their String() text) and []byte values become redacted strings;
//   - other slog.KindAny values (maps, slices, structs) are replaced by their
//     redacted copy from Value with the zero Policy;
//   - integers whose digits form a payment card number become
//     "<REDACTED:card>";
//   - LogValuer values are resolved first, and attribute keys and group names
//     are redacted with String too;
//   - attributes added with WithAttrs are redacted once, when added.
//
// Guarantee: nothing that Find would report, and no value under a sensitive
// key, reaches next through this handler; no PII is kept (logs get no
// consent exceptions). Time, level, source and the remaining numbers, bools,
// durations and times pass unchanged.
//
// The handler holds no mutable state and is safe for concurrent use as long
// as next is. Wrapping a handler twice is harmless.
func NewHandler(next slog.Handler) slog.Handler {
	return &handler{next: next}
}

type handler struct {
	next slog.Handler
	// hide is set inside a group whose name is a sensitive key: every
	// attribute value is replaced by Placeholder.
	hide bool
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	nr := slog.NewRecord(r.Time, r.Level, String(r.Message), r.PC)
	var arr [8]slog.Attr
	attrs := arr[:0]
	r.Attrs(func(a slog.Attr) bool {
		attrs = append(attrs, redactAttr(a, h.hide, 0))
		return true
	})
	nr.AddAttrs(attrs...)
	return h.next.Handle(ctx, nr)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		out[i] = redactAttr(a, h.hide, 0)
	}
	return &handler{next: h.next.WithAttrs(out), hide: h.hide}
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	_, sensitive := classifyKey(name)
	return &handler{next: h.next.WithGroup(String(name)), hide: h.hide || sensitive}
}

// maxAttrDepth bounds group nesting; deeper groups are replaced whole.
const maxAttrDepth = 64

func redactAttr(a slog.Attr, hide bool, depth int) slog.Attr {
	key := String(a.Key)
	if !hide && a.Key != "" {
		_, hide = classifyKey(a.Key)
	}
	if a.Key == "" && a.Value.Kind() != slog.KindGroup && a.Value.Any() == nil {
		return a // the empty Attr, which handlers ignore
	}
	v := a.Value
	if !hide {
		v = v.Resolve()
	} else if v.Kind() != slog.KindGroup || a.Key != "" {
		return slog.String(key, Placeholder)
	}
	switch v.Kind() {
	case slog.KindString:
		return slog.String(key, String(v.String()))
	case slog.KindGroup:
		if depth >= maxAttrDepth {
			return slog.String(key, Placeholder)
		}
		g := v.Group()
		out := make([]slog.Attr, len(g))
		for i, ga := range g {
			out[i] = redactAttr(ga, hide, depth+1)
		}
		return slog.Attr{Key: key, Value: slog.GroupValue(out...)}
	case slog.KindInt64:
		if n := v.Int64(); n >= 1e12 || n <= -1e12 {
			if r := String(strconv.FormatInt(n, 10)); r != strconv.FormatInt(n, 10) {
				return slog.String(key, r)
			}
		}
	case slog.KindUint64:
		if n := v.Uint64(); n >= 1e12 {
			if r := String(strconv.FormatUint(n, 10)); r != strconv.FormatUint(n, 10) {
				return slog.String(key, r)
			}
		}
	case slog.KindFloat64:
		if f := v.Float64(); f == math.Trunc(f) && math.Abs(f) >= 1e12 && math.Abs(f) < 1e20 {
			t := strconv.FormatFloat(f, 'f', -1, 64)
			if r := String(t); r != t {
				return slog.String(key, r)
			}
		}
	case slog.KindAny:
		return slog.Attr{Key: key, Value: redactAny(v.Any())}
	}
	return slog.Attr{Key: key, Value: v}
}

func redactAny(x any) (out slog.Value) {
	defer func() {
		// A String or Error method that panics (for example on a nil
		// pointer receiver) must not take the logger down or leak.
		if recover() != nil {
			out = slog.StringValue(Placeholder)
		}
	}()
	switch t := x.(type) {
	case nil:
		return slog.AnyValue(nil)
	case error:
		return slog.StringValue(String(t.Error()))
	case fmt.Stringer:
		return slog.StringValue(String(t.String()))
	case []byte:
		return slog.StringValue(String(string(t)))
	}
	v, _ := Value(x, Policy{})
	return slog.AnyValue(v)
}
