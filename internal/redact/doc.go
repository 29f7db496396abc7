// Package redact removes secrets and personally identifiable information
// (PII) from free text, from JSON-like structured data and from log/slog
// records before they reach logs, traces, storage or the audit log.
//
// It implements the platform policy P1 ("decision inputs that contain PII
// must be redacted or require tenant explicit consent") and the rule "never
// write secrets or tokens to logs; replace with <REDACTED>".
//
// # Placeholders
//
// A secret (kinds jwt, bearer, secret_assignment, url_credentials and the
// field kind secret) is replaced by [Placeholder], "<REDACTED>", which says
// nothing about what was removed. PII is replaced by "<REDACTED:kind>", for
// example "<REDACTED:email>", so that a reader knows what was removed but not
// the value. Placeholders are recognised on input: they are never reported
// by [Find] and never redacted again, which makes every function of the
// package idempotent.
//
// # Guarantees and limits
//
// Detection is heuristic. What the package guarantees is exact: the result
// of [String] contains no span that [Find] reports, whatever the input
// (including invalid UTF-8), secrets are redacted regardless of any
// [Policy], a value under a field whose name is a secret name
// ([SensitiveKey]) never survives [Value] or the slog handler, and no
// function panics on any input. A secret or PII value in a shape that no
// detector knows (a password alone in a sentence, a name in prose) is not
// detected; keep such data under named fields.
//
// # Where things live
//
//   - kind.go: the kinds ([Kind]), which are secrets, and their severity order.
//   - find.go: [Find], the detectors' entry point, and the merge of their findings;
//     its doc lists every detector and what it matches.
//   - scan.go: the scan driver (one pass dispatching on byte classes) and the ASCII
//     lexing helpers the detectors share.
//   - fold.go: the folded (NFKC, format characters removed) form a non-ASCII string
//     is scanned in a second time, and the map back to the original offsets.
//   - placeholder.go: placeholders already in the input, never reported or cut.
//   - one file per detector family: secrets.go (bearer, JWT, URL credentials),
//     assignment.go (key=value with a secret or PII key), email.go, phone.go,
//     card.go (Luhn), iban.go, nationalid.go (US SSN, UK NINO), ip.go (IPv4, IPv6).
//   - keys.go: [SensitiveKey], the field names that are secrets or PII.
//   - string.go, value.go: redacting a string ([String]) and structured data
//     ([Value]) under a [Policy]; echo.go quotes a value in an error message.
//   - slog.go: the log/slog handler; transport.go: HTTP client errors without the
//     request URL (its userinfo or query may hold credentials).
package redact
