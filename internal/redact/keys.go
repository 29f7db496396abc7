package redact

// SensitiveKey reports whether a field name itself denotes a secret or PII
// field, and which kind:
//
//   - KindSecret for secret names: password, passwd, pwd, passphrase,
//     secret, token, api_key/apikey, access_key, private_key, signing_key,
//     authorization, dsn, connection_string, credential(s), cookie(s),
//     session, jwt, bearer;
//   - KindEmail (email, e_mail), KindPhone (phone, mobile, telephone, tel,
//     msisdn), KindNationalID (ssn, social_security, national_id, nino,
//     passport, tax_id),
//     KindIBAN (iban), KindCard (card_number, credit_card, cc_number);
//   - KindPIIField for other named PII: dob, date_of_birth, birth_date,
//     birthday, address, full_name, first_name, last_name, middle_name,
//     surname, given_name, family_name, ip, ip_address, remote_addr.
//
// The name is folded as Find folds text (NFKC, format characters dropped),
// then split into words at case changes (camelCase, APIKey), digits
// and any non-alphanumeric separator (snake_case, kebab-case, dots), and
// compared case-insensitively word by word, so "X-Api-Key", "apiKey",
// "DB_PASSWORD", "user.emailAddress" and "clientSecret" match while
// "adobe", "secretary" or "tokenizer" do not. Multi-word names match in any
// spelling ("date_of_birth", "dateOfBirth", "DOB"). Placeholders inside a
// name count as separators.
//
// Names that describe metadata about a sensitive value rather than the value
// are not sensitive: a last word such as count, length, type, ttl, expiry,
// expires, timeout, policy, enabled, required, verified, name, path, file or
// url ("token_type", "password_policy", "session_timeout", "secret_name",
// "email_verified"), a first word such as has, is, num, max, min or total
// ("has_password", "max_sessions"), and the plural "tokens" except on its own
// ("max_tokens", "prompt_tokens"). When several words match, a secret wins
// over PII and a specific PII kind over KindPIIField ("email_address" is
// KindEmail).
func SensitiveKey(name string) (Kind, bool) {
	return classifyKey(name)
}

type keyInfo struct {
	kind  Kind
	whole bool // matches only when it is the entire name
}

// keyPhrases maps a lower-case word, or the concatenation of consecutive
// words, to its kind.
var keyPhrases = map[string]keyInfo{
	// secrets
	"password":         {kind: KindSecret},
	"passwords":        {kind: KindSecret},
	"passwd":           {kind: KindSecret},
	"pwd":              {kind: KindSecret},
	"passphrase":       {kind: KindSecret},
	"secret":           {kind: KindSecret},
	"secrets":          {kind: KindSecret},
	"token":            {kind: KindSecret},
	"tokens":           {kind: KindSecret, whole: true},
	"apikey":           {kind: KindSecret},
	"apikeys":          {kind: KindSecret},
	"accesskey":        {kind: KindSecret},
	"privatekey":       {kind: KindSecret},
	"signingkey":       {kind: KindSecret},
	"encryptionkey":    {kind: KindSecret},
	"authorization":    {kind: KindSecret},
	"dsn":              {kind: KindSecret},
	"connectionstring": {kind: KindSecret},
	"credential":       {kind: KindSecret},
	"credentials":      {kind: KindSecret},
	"cookie":           {kind: KindSecret},
	"cookies":          {kind: KindSecret},
	"session":          {kind: KindSecret},
	"sessions":         {kind: KindSecret},
	"jwt":              {kind: KindSecret},
	"bearer":           {kind: KindSecret},

	// PII with a specific kind
	"email":             {kind: KindEmail},
	"emails":            {kind: KindEmail},
	"phone":             {kind: KindPhone},
	"phones":            {kind: KindPhone},
	"mobile":            {kind: KindPhone},
	"telephone":         {kind: KindPhone},
	"tel":               {kind: KindPhone},
	"msisdn":            {kind: KindPhone},
	"ssn":               {kind: KindNationalID},
	"socialsecurity":    {kind: KindNationalID},
	"nationalid":        {kind: KindNationalID},
	"nationalinsurance": {kind: KindNationalID},
	"nino":              {kind: KindNationalID},
	"passport":          {kind: KindNationalID},
	"taxid":             {kind: KindNationalID},
	"iban":              {kind: KindIBAN},
	"cardnumber":        {kind: KindCard},
	"creditcard":        {kind: KindCard},
	"ccnumber":          {kind: KindCard},

	// other named PII
	"dob":         {kind: KindPIIField},
	"dateofbirth": {kind: KindPIIField},
	"birthdate":   {kind: KindPIIField},
	"birthday":    {kind: KindPIIField},
	"address":     {kind: KindPIIField},
	"addresses":   {kind: KindPIIField},
	"fullname":    {kind: KindPIIField},
	"firstname":   {kind: KindPIIField},
	"lastname":    {kind: KindPIIField},
	"middlename":  {kind: KindPIIField},
	"surname":     {kind: KindPIIField},
	"givenname":   {kind: KindPIIField},
	"familyname":  {kind: KindPIIField},
	"ip":          {kind: KindPIIField},
	"ipaddr":      {kind: KindPIIField},
	"remoteaddr":  {kind: KindPIIField},
}

// lastWordQualifiers make a name describe metadata about a sensitive value
// when they are its last word and not part of the matched phrase.
var lastWordQualifiers = map[string]bool{
	"count": true, "counts": true, "num": true, "len": true, "length": true,
	"size": true, "limit": true, "limits": true, "max": true, "min": true,
	"ttl": true, "type": true, "types": true, "kind": true, "version": true,
	"expiry": true, "expires": true, "expiration": true, "exp": true, "at": true,
	"timeout": true, "policy": true, "enabled": true, "disabled": true,
	"required": true, "verified": true, "valid": true, "validated": true,
	"present": true, "set": true, "format": true, "provided": true,
	"strength": true, "name": true, "names": true, "path": true, "file": true,
	"url": true, "uri": true, "endpoint": true, "env": true, "var": true,
	"ref": true, "source": true, "mode": true, "scope": true, "scopes": true,
	"issuer": true, "audience": true,
}

// firstWordQualifiers make a name a flag or a quantity about a sensitive
// value when they are its first word and not part of the matched phrase.
var firstWordQualifiers = map[string]bool{
	"has": true, "is": true, "num": true, "max": true, "min": true,
	"total": true, "allow": true, "use": true, "enable": true,
	"disable": true, "require": true, "requires": true,
}

// phraseLens has bit n of entry [a][b] set when some phrase starting with
// the letters 'a'+a, 'a'+b is n bytes long: nearly every word sequence is
// rejected with it before any map lookup.
var phraseLens = func() (m [26][26]uint64) {
	for p := range keyPhrases {
		if len(p) < 64 && isLower(p[0]) && isLower(p[1]) {
			m[p[0]-'a'][p[1]-'a'] |= 1 << len(p)
		}
	}
	return m
}()

type wordSpan struct{ start, end int }

// maxKeyWords bounds the words considered in a name.
const maxKeyWords = 16

// classifyKey implements SensitiveKey without allocating for names of up to
// 64 bytes.
func classifyKey(name string) (Kind, bool) {
	if f, ok := fold(name); ok {
		name = f.text // "ｅｍａｉｌ" is "email"
	}
	if !maybeSensitiveKey(name) {
		return "", false
	}
	return classifyWords(name)
}

// classifyWords splits name into words and matches phrases.
//
//go:noinline
func classifyWords(name string) (Kind, bool) {
	var arr [64]byte
	buf := arr[:0]
	if len(name) > len(arr) {
		buf = make([]byte, 0, len(name))
	}
	var words [maxKeyWords]wordSpan
	nw := 0
	inWord := false
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '<' {
			// Placeholders are separators: "<REDACTED:email>" as a key
			// says nothing about the value under it.
			if e := placeholderEnd(name, i); e > 0 {
				i = e - 1
				c = ' '
			}
		}
		if !isAlnum(c) {
			if inWord {
				words[nw-1].end = len(buf)
			}
			inWord = false
			continue
		}
		boundary := !inWord
		if inWord {
			p := name[i-1]
			switch {
			case isDigit(c) != isDigit(p):
				boundary = true
			case isUpper(c) && isLower(p):
				boundary = true
			case isUpper(c) && isUpper(p) && i+1 < len(name) && isLower(name[i+1]):
				boundary = true
			}
		}
		if boundary {
			if inWord {
				words[nw-1].end = len(buf)
			}
			if nw == maxKeyWords {
				inWord = false
				break
			}
			words[nw] = wordSpan{start: len(buf)}
			nw++
		}
		buf = append(buf, toLower(c))
		inWord = true
	}
	if inWord {
		words[nw-1].end = len(buf)
	}
	if nw == 0 {
		return "", false
	}

	// Indexing a map with string(bytes) does not allocate. The qualifier
	// lookups are done once, on the first phrase match.
	qualDone, lastQual, firstQual := false, false, false
	best := Kind("")
	bestRank := 1 << 30
	for i := 0; i < nw; i++ {
		st := words[i].start
		if st+1 >= len(buf) || !isLower(buf[st]) || !isLower(buf[st+1]) {
			continue
		}
		lens := phraseLens[buf[st]-'a'][buf[st+1]-'a']
		if lens == 0 {
			continue
		}
		for j := i; j < nw && j < i+4; j++ {
			l := words[j].end - words[i].start
			if l >= 64 || lens&(1<<l) == 0 {
				continue
			}
			info, ok := keyPhrases[string(buf[words[i].start:words[j].end])]
			if !ok {
				continue
			}
			if info.whole && (i != 0 || j != nw-1) {
				continue
			}
			if !qualDone {
				qualDone = true
				lastQual = lastWordQualifiers[string(buf[words[nw-1].start:words[nw-1].end])]
				firstQual = firstWordQualifiers[string(buf[words[0].start:words[0].end])]
			}
			if lastQual && j < nw-1 {
				continue
			}
			if firstQual && i > 0 {
				continue
			}
			if r := keyRank(info.kind); r < bestRank {
				best, bestRank = info.kind, r
			}
		}
	}
	return best, best != ""
}

// keyRank prefers secrets, then specific PII kinds, then KindPIIField.
func keyRank(k Kind) int {
	switch k {
	case KindSecret:
		return 0
	case KindPIIField:
		return 2
	}
	return 1
}

// maybeSensitiveKey is a cheap, conservative gate for classifyKey: it
// reports false only when no word of name starts with the first two letters
// of any phrase. It splits words exactly as classifyWords does.
func maybeSensitiveKey(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '<' {
			if e := placeholderEnd(name, i); e > 0 {
				i = e - 1 // a separator
				continue
			}
		}
		if !isLetter(c) {
			continue
		}
		if i > 0 {
			p := name[i-1]
			start := !isLetter(p) ||
				(isUpper(c) && isLower(p)) ||
				(isUpper(c) && isUpper(p) && i+1 < len(name) && isLower(name[i+1]))
			if !start {
				continue
			}
		}
		// The second letter of a phrase may be the first of the next word
		// ("e_mail", "eMail").
		j := i + 1
		for j < len(name) && !isAlnum(name[j]) {
			if name[j] == '<' {
				if e := placeholderEnd(name, j); e > 0 {
					j = e
					continue
				}
			}
			j++
		}
		if j >= len(name) || !isLetter(name[j]) {
			continue
		}
		if phraseLens[toLower(c)-'a'][toLower(name[j])-'a'] != 0 {
			return true
		}
	}
	return false
}
