package redact

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDetectorEvasions are the evasions of issue #9 (card numbers with dots, a
// full-width "＠", SSNs without dashes) and their relatives: each must be
// redacted whole.
func TestDetectorEvasions(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		// Cards: any of space, dash and dot between the groups, Luhn-valid.
		{"card dots", "card 4111.1111.1111.1111 ok", "card <REDACTED:card> ok"},
		{"card mixed separators", "4111-1111 1111.1111", "<REDACTED:card>"},
		{"card amex dots", "3782.822463.10005", "<REDACTED:card>"},
		{"card full-width digits", "４１１１１１１１１１１１１１１１", "<REDACTED:card>"},
		{"card zero-width joiners", "4111\u200b1111\u200b1111\u200b1111", "<REDACTED:card>"},

		// E-mail: full-width and small commercial at, full-width letters,
		// invisible characters inside.
		{"email full-width at", "mail user＠example.com now", "mail <REDACTED:email> now"},
		{"email small at", "user﹫example.com", "<REDACTED:email>"},
		{"email full-width", "ｕｓｅｒ＠ｅｘａｍｐｌｅ．ｃｏｍ", "<REDACTED:email>"},
		{"email zero-width space", "user@exa\u200bmple.com", "<REDACTED:email>"},
		{"email soft hyphen", "us\u00ader@example.com", "<REDACTED:email>"},

		// SSN without dashes: after a word naming an SSN, valid per the SSA.
		{"ssn bare", "ssn 123456789", "ssn <REDACTED:national_id>"},
		{"ssn hash", "SSN#123456789.", "SSN#<REDACTED:national_id>."},
		{"ssn prose", "her social security number is 123456789", "her social security number is <REDACTED:national_id>"},
		{"ssn spaces", "SSN 123 45 6789", "SSN <REDACTED:national_id>"},
		{"ssn dots", "ssn: 123.45.6789", "ssn: <REDACTED:national_id>"},
		{"ssn full-width", "ｓｓｎ １２３４５６７８９", "ｓｓｎ <REDACTED:national_id>"},

		// Secrets in full-width letters.
		{"secret full-width key", "ｐａｓｓｗｏｒｄ=hunter2", "ｐａｓｓｗｏｒｄ=<REDACTED>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, String(tt.in))
			require.Empty(t, Find(String(tt.in)))
		})
	}
}

// TestDetectorEvasionsNegative are numbers the new rules must leave alone.
func TestDetectorEvasionsNegative(t *testing.T) {
	for _, in := range []string{
		"order 123456789",                     // nine digits without an SSN word
		"ssn 000123456",                       // area 000 is never issued
		"ssn 666123456 and ssn 900123456",     // nor 666 or 9xx
		"ssn 123006789",                       // group 00
		"ssn 123450000",                       // serial 0000
		"ssn 1234567890",                      // ten digits
		"classname 123456789",                 // "ssn" inside a word
		"ssn\n123456789",                      // the word is on another line
		"amount 123 45 6789",                  // spaced groups need the SSN word
		"4111.1111.1111.1112",                 // Luhn-invalid
		"released 2026.11.27 build 4111.1111", // dotted dates and short groups
		"café ｍａｘ 12",                         // folded, nothing sensitive
	} {
		t.Run(in, func(t *testing.T) {
			require.Empty(t, Find(in))
			require.Equal(t, in, String(in))
		})
	}
}

func TestSensitiveKeyFolds(t *testing.T) {
	for name, want := range map[string]Kind{
		"ｅｍａｉｌ":                  KindEmail,
		"ｐａｓｓｗｏｒｄ":               KindSecret,
		"social_security_number": KindNationalID,
		"api\u200bkey":           KindSecret,
	} {
		k, ok := SensitiveKey(name)
		require.True(t, ok, name)
		require.Equal(t, want, k, name)
	}
}
