package redact

// Kind names a class of sensitive data.
type Kind string

// Detector kinds reported by [Find], and field kinds returned by
// [SensitiveKey].
const (
	// PII detected in free text.
	KindEmail      Kind = "email"       // RFC 5322-ish address with a domain and an alphabetic TLD
	KindPhone      Kind = "phone"       // +CC international or common national format, 7-15 digits
	KindCard       Kind = "card"        // payment card number, Luhn-valid, grouped by spaces, dashes or dots
	KindIBAN       Kind = "iban"        // IBAN with a known country length and a valid mod-97 check
	KindNationalID Kind = "national_id" // US SSN 123-45-6789 (123456789 after "SSN") or UK NINO AB123456C
	KindIPv4       Kind = "ipv4"        // valid dotted-quad IPv4 address
	KindIPv6       Kind = "ipv6"        // valid IPv6 address

	// Secrets detected in free text.
	KindJWT              Kind = "jwt"               // eyJ….….… compact JWS/JWT
	KindBearer           Kind = "bearer"            // the token of "Bearer <token>"
	KindSecretAssignment Kind = "secret_assignment" // the value of password=…, api_key: …, token=…
	KindURLCredentials   Kind = "url_credentials"   // the password of scheme://user:password@host

	// Field kinds, returned by SensitiveKey for field names. KindPIIField is
	// also reported by Find for the value of a named PII field in text
	// ("first_name=Ada", "dob: 1990-01-01").
	KindSecret   Kind = "secret"    // a field whose name denotes a secret
	KindPIIField Kind = "pii_field" // a named PII field with no more specific kind (name, address, dob, ip)
)

// Placeholder replaces secrets. PII is replaced by "<REDACTED:kind>".
const Placeholder = "<REDACTED>"

// IsSecretKind reports whether k is a secret kind. Secrets are replaced by
// [Placeholder] and are redacted whatever the [Policy] allows.
func IsSecretKind(k Kind) bool {
	switch k {
	case KindJWT, KindBearer, KindSecretAssignment, KindURLCredentials, KindSecret:
		return true
	}
	return false
}

// placeholderFor returns the text that replaces a finding of kind k:
// Placeholder for secrets and unknown kinds, "<REDACTED:kind>" for PII.
// The strings are constants so that replacing allocates nothing.
func placeholderFor(k Kind) string {
	switch k {
	case KindEmail:
		return "<REDACTED:email>"
	case KindPhone:
		return "<REDACTED:phone>"
	case KindCard:
		return "<REDACTED:card>"
	case KindIBAN:
		return "<REDACTED:iban>"
	case KindNationalID:
		return "<REDACTED:national_id>"
	case KindIPv4:
		return "<REDACTED:ipv4>"
	case KindIPv6:
		return "<REDACTED:ipv6>"
	case KindPIIField:
		return "<REDACTED:pii_field>"
	}
	return Placeholder
}

// piiPlaceholderKinds are the kinds that may follow "<REDACTED:" in a
// placeholder. Only these exact placeholders are recognised on input, so
// that a forged "<REDACTED:hunter2>" is not mistaken for one.
var piiPlaceholderKinds = [...]string{
	string(KindEmail), string(KindPhone), string(KindCard), string(KindIBAN),
	string(KindNationalID), string(KindIPv4), string(KindIPv6), string(KindPIIField),
}

// rank orders kinds when overlapping findings are merged into one: the
// merged finding takes the kind with the lowest rank, so a secret always
// wins over PII.
func rank(k Kind) int {
	switch k {
	case KindJWT, KindBearer, KindSecretAssignment, KindURLCredentials, KindSecret:
		return 0
	case KindNationalID:
		return 1
	case KindCard:
		return 2
	case KindIBAN:
		return 3
	case KindEmail:
		return 4
	case KindPhone:
		return 5
	case KindIPv6:
		return 6
	case KindIPv4:
		return 7
	case KindPIIField:
		return 8
	}
	return 9
}

// kindBit maps a kind to a bit of a kindSet.
func kindBit(k Kind) kindSet {
	switch k {
	case KindEmail:
		return 1 << 0
	case KindPhone:
		return 1 << 1
	case KindCard:
		return 1 << 2
	case KindIBAN:
		return 1 << 3
	case KindNationalID:
		return 1 << 4
	case KindIPv4:
		return 1 << 5
	case KindIPv6:
		return 1 << 6
	case KindJWT:
		return 1 << 7
	case KindBearer:
		return 1 << 8
	case KindSecretAssignment:
		return 1 << 9
	case KindURLCredentials:
		return 1 << 10
	case KindSecret:
		return 1 << 11
	case KindPIIField:
		return 1 << 12
	}
	return 0
}

// kindSet is a set of kinds, one bit per kind (see kindBit).
type kindSet uint16

// allKinds lists the kinds in kindBit order, for iterating a kindSet.
var allKinds = [...]Kind{
	KindEmail, KindPhone, KindCard, KindIBAN, KindNationalID, KindIPv4, KindIPv6,
	KindJWT, KindBearer, KindSecretAssignment, KindURLCredentials, KindSecret, KindPIIField,
}
