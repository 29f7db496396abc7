package redact

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSensitiveKey(t *testing.T) {
	tests := []struct {
		name string
		kind Kind // "" means not sensitive
	}{
		// secrets, in every spelling
		{"password", KindSecret},
		{"Password", KindSecret},
		{"DB_PASSWORD", KindSecret},
		{"dbPassword", KindSecret},
		{"passwd", KindSecret},
		{"secret", KindSecret},
		{"clientSecret", KindSecret},
		{"client-secret", KindSecret},
		{"token", KindSecret},
		{"access_token", KindSecret},
		{"refreshToken", KindSecret},
		{"api_key", KindSecret},
		{"apiKey", KindSecret},
		{"APIKey", KindSecret},
		{"X-Api-Key", KindSecret},
		{"apikey", KindSecret},
		{"authorization", KindSecret},
		{"Authorization", KindSecret},
		{"private_key", KindSecret},
		{"privateKey", KindSecret},
		{"dsn", KindSecret},
		{"database.dsn", KindSecret},
		{"credential", KindSecret},
		{"credentials", KindSecret},
		{"cookie", KindSecret},
		{"Set-Cookie", KindSecret},
		{"session", KindSecret},
		{"session_id", KindSecret},
		{"aws_secret_access_key", KindSecret},
		{"tokens", KindSecret},

		// named PII
		{"email", KindEmail},
		{"e_mail", KindEmail},
		{"E-Mail", KindEmail},
		{"emailAddress", KindEmail},
		{"user.email", KindEmail},
		{"phone", KindPhone},
		{"phone_number", KindPhone},
		{"mobile", KindPhone},
		{"ssn", KindNationalID},
		{"SSN", KindNationalID},
		{"national_id", KindNationalID},
		{"nationalId", KindNationalID},
		{"passport", KindNationalID},
		{"passportNumber", KindNationalID},
		{"iban", KindIBAN},
		{"card_number", KindCard},
		{"cardNumber", KindCard},
		{"credit_card", KindCard},
		{"dob", KindPIIField},
		{"DOB", KindPIIField},
		{"date_of_birth", KindPIIField},
		{"dateOfBirth", KindPIIField},
		{"address", KindPIIField},
		{"home-address", KindPIIField},
		{"full_name", KindPIIField},
		{"firstName", KindPIIField},
		{"last-name", KindPIIField},
		{"ip_address", KindPIIField},
		{"ipAddress", KindPIIField},
		{"client_ip", KindPIIField},

		// not sensitive
		{"", ""},
		{"user", ""},
		{"name", ""},
		{"level", ""},
		{"msg", ""},
		{"request_id", ""},
		{"adobe", ""},
		{"secretary", ""},
		{"tokenizer", ""},
		{"token_type", ""},
		{"token_count", ""},
		{"max_tokens", ""},
		{"prompt_tokens", ""},
		{"password_policy", ""},
		{"passwordLength", ""},
		{"session_timeout", ""},
		{"secret_name", ""},
		{"email_verified", ""},
		{"has_password", ""},
		{"isEmailVerified", ""},
		{"ip_version", ""},
		{"key", ""},
		{"card", ""},
		{"zip", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, ok := SensitiveKey(tt.name)
			require.Equal(t, tt.kind != "", ok)
			require.Equal(t, tt.kind, k)
		})
	}
}

func TestSensitiveKeyNoAlloc(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		_, _ = SensitiveKey("userEmailAddress")
		_, _ = SensitiveKey("request_id")
	})
	require.Zero(t, allocs)
}

// TestKeyGateConservative checks that the fast gate never rejects a name
// that the full classification accepts.
func TestKeyGateConservative(t *testing.T) {
	names := []string{"e_mail", "eMail", "E-Mail", "e<REDACTED>mail", "x<REDACTED:email>password",
		"APIKey", "oauth2token", "ipAddress", "dateOfBirth", "DOB", "a.b.c.secret", "__token__"}
	for p := range keyPhrases {
		names = append(names, p, "x_"+p, strings.ToUpper(p), "my"+strings.ToUpper(p[:1])+p[1:])
	}
	for _, n := range names {
		if _, ok := classifyWords(n); ok {
			require.True(t, maybeSensitiveKey(n), n)
		}
	}
}
