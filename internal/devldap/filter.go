package devldap

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
	"unicode"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// truth is the three-valued result of a filter (RFC 4511 section 4.5.1.7):
// an entry is returned only when its filter is TRUE, and NOT of Undefined
// stays Undefined, so a filter on something the server cannot judge never
// turns into a match by negation.
type truth int8

const (
	isFalse truth = iota
	isTrue
	isUndefined
)

func truthOf(b bool) truth {
	if b {
		return isTrue
	}
	return isFalse
}

type filterOp int

const (
	opAnd filterOp = iota
	opOr
	opNot
	opEqual
	opSubstrings
	opGreaterOrEqual
	opLessOrEqual
	opPresent
	opApprox
	opExtensible
)

type filter struct {
	op       filterOp
	children []*filter // and, or, not
	attr     attrDesc
	value    string // equality, ordering, approx; unescaped
	initial  string // substrings; "" when absent
	any      []string
	final    string
}

// maxFilterDepth bounds recursion on hostile, deeply nested filters.
const maxFilterDepth = 64

var errBadFilter = errors.New("invalid search filter")

// parseFilter compiles an RFC 4515 string filter. gldap hands us the filter
// as a string re-encoded from the client's packet; go-ldap turns it back
// into BER (undoing the \XX escapes), which we convert into our own tree.
func parseFilter(s string) (*filter, error) {
	p, err := ldap.CompileFilter(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadFilter, err)
	}
	return filterFromPacket(p, 0)
}

func filterFromPacket(p *ber.Packet, depth int) (*filter, error) {
	if depth > maxFilterDepth {
		return nil, fmt.Errorf("%w: nested too deeply", errBadFilter)
	}
	if p == nil || p.ClassType != ber.ClassContext {
		return nil, fmt.Errorf("%w: not a filter choice", errBadFilter)
	}
	f := &filter{}
	switch p.Tag {
	case ldap.FilterAnd, ldap.FilterOr, ldap.FilterNot:
		f.op = map[ber.Tag]filterOp{ldap.FilterAnd: opAnd, ldap.FilterOr: opOr, ldap.FilterNot: opNot}[p.Tag]
		if f.op == opNot && len(p.Children) != 1 {
			return nil, fmt.Errorf("%w: not needs exactly one operand", errBadFilter)
		}
		for _, c := range p.Children {
			child, err := filterFromPacket(c, depth+1)
			if err != nil {
				return nil, err
			}
			f.children = append(f.children, child)
		}
	case ldap.FilterEqualityMatch, ldap.FilterGreaterOrEqual, ldap.FilterLessOrEqual, ldap.FilterApproxMatch:
		f.op = map[ber.Tag]filterOp{
			ldap.FilterEqualityMatch:  opEqual,
			ldap.FilterGreaterOrEqual: opGreaterOrEqual,
			ldap.FilterLessOrEqual:    opLessOrEqual,
			ldap.FilterApproxMatch:    opApprox,
		}[p.Tag]
		if len(p.Children) != 2 {
			return nil, fmt.Errorf("%w: attribute value assertion needs two parts", errBadFilter)
		}
		desc, err := parseAttrDesc(string(p.Children[0].Data.Bytes()))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errBadFilter, err)
		}
		f.attr, f.value = desc, string(p.Children[1].Data.Bytes())
	case ldap.FilterSubstrings:
		f.op = opSubstrings
		if len(p.Children) != 2 || len(p.Children[1].Children) == 0 {
			return nil, fmt.Errorf("%w: malformed substrings", errBadFilter)
		}
		desc, err := parseAttrDesc(string(p.Children[0].Data.Bytes()))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errBadFilter, err)
		}
		f.attr = desc
		parts := p.Children[1].Children
		for i, part := range parts {
			v := string(part.Data.Bytes())
			switch part.Tag {
			case ldap.FilterSubstringsInitial:
				if i != 0 {
					return nil, fmt.Errorf("%w: initial substring not first", errBadFilter)
				}
				f.initial = v
			case ldap.FilterSubstringsAny:
				f.any = append(f.any, v)
			case ldap.FilterSubstringsFinal:
				if i != len(parts)-1 {
					return nil, fmt.Errorf("%w: final substring not last", errBadFilter)
				}
				f.final = v
			default:
				return nil, fmt.Errorf("%w: unknown substring choice", errBadFilter)
			}
		}
	case ldap.FilterPresent:
		f.op = opPresent
		desc, err := parseAttrDesc(string(p.Data.Bytes()))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errBadFilter, err)
		}
		f.attr = desc
	case ldap.FilterExtensibleMatch:
		// Extensible matching is not supported; it evaluates to Undefined
		// like an unknown matching rule would on a real server.
		f.op = opExtensible
	default:
		return nil, fmt.Errorf("%w: unknown filter choice %d", errBadFilter, p.Tag)
	}
	return f, nil
}

// matchRule is how values of an attribute type compare.
type matchRule int

const (
	ruleCaseIgnore matchRule = iota // directory strings: case and extra spaces ignored
	ruleDN                          // distinguished names: compared in normalized form
	ruleInteger
	ruleSecret // userPassword: never matchable, so filters cannot probe it
)

var dnTypes = map[string]bool{
	"member": true, "uniquemember": true, "memberof": true, "manager": true,
	"seealso": true, "owner": true, "secretary": true, "distinguishedname": true,
	"namingcontexts": true, "subschemasubentry": true,
}

var integerTypes = map[string]bool{
	"uidnumber": true, "gidnumber": true, "supportedldapversion": true,
}

func ruleFor(typ string) matchRule {
	switch {
	case typ == "userpassword":
		return ruleSecret
	case dnTypes[typ]:
		return ruleDN
	case integerTypes[typ]:
		return ruleInteger
	}
	return ruleCaseIgnore
}

// eval evaluates f against e. known tells which attribute types the server
// recognizes; a filter item on any other type is Undefined.
func (f *filter) eval(e *entry, known map[string]bool) truth {
	switch f.op {
	case opAnd:
		result := isTrue
		for _, c := range f.children {
			switch c.eval(e, known) {
			case isFalse:
				return isFalse
			case isUndefined:
				result = isUndefined
			}
		}
		return result
	case opOr:
		result := isFalse
		for _, c := range f.children {
			switch c.eval(e, known) {
			case isTrue:
				return isTrue
			case isUndefined:
				result = isUndefined
			}
		}
		return result
	case opNot:
		switch f.children[0].eval(e, known) {
		case isTrue:
			return isFalse
		case isFalse:
			return isTrue
		}
		return isUndefined
	case opExtensible:
		return isUndefined
	}

	if !known[f.attr.typ] {
		return isUndefined
	}
	rule := ruleFor(f.attr.typ)
	if rule == ruleSecret {
		return isUndefined
	}
	if f.op == opPresent {
		return truthOf(e.has(f.attr))
	}
	values := e.values(f.attr)
	switch f.op {
	case opEqual, opApprox:
		// Approximate matching may fall back to equality (RFC 4511 4.5.1.7.6).
		return matchEquality(rule, f.value, values)
	case opSubstrings:
		if rule != ruleCaseIgnore {
			return isUndefined // DNs and integers have no substring rule
		}
		for _, v := range values {
			if f.matchSubstrings(foldValue(v)) {
				return isTrue
			}
		}
		return isFalse
	case opGreaterOrEqual, opLessOrEqual:
		return matchOrdering(rule, f.op, f.value, values)
	}
	return isUndefined
}

func matchEquality(rule matchRule, assertion string, values []string) truth {
	switch rule {
	case ruleDN:
		want, err := normalizeDN(assertion)
		if err != nil {
			return isUndefined // not a valid DN: the assertion cannot be judged
		}
		wantKey := strings.Join(want, ",")
		for _, v := range values {
			if got, err := normalizeDN(v); err == nil && strings.Join(got, ",") == wantKey {
				return isTrue
			}
		}
		return isFalse
	case ruleInteger:
		want, ok := new(big.Int).SetString(strings.TrimSpace(assertion), 10)
		if !ok {
			return isUndefined
		}
		for _, v := range values {
			if got, ok := new(big.Int).SetString(strings.TrimSpace(v), 10); ok && got.Cmp(want) == 0 {
				return isTrue
			}
		}
		return isFalse
	default:
		want := foldValue(assertion)
		for _, v := range values {
			if foldValue(v) == want {
				return isTrue
			}
		}
		return isFalse
	}
}

func matchOrdering(rule matchRule, op filterOp, assertion string, values []string) truth {
	var cmp func(v string) (int, bool)
	switch rule {
	case ruleInteger:
		want, ok := new(big.Int).SetString(strings.TrimSpace(assertion), 10)
		if !ok {
			return isUndefined
		}
		cmp = func(v string) (int, bool) {
			got, ok := new(big.Int).SetString(strings.TrimSpace(v), 10)
			if !ok {
				return 0, false
			}
			return got.Cmp(want), true
		}
	case ruleCaseIgnore:
		want := foldValue(assertion)
		cmp = func(v string) (int, bool) { return strings.Compare(foldValue(v), want), true }
	default:
		return isUndefined // no ordering rule for DNs
	}
	for _, v := range values {
		c, ok := cmp(v)
		if !ok {
			continue
		}
		if (op == opGreaterOrEqual && c >= 0) || (op == opLessOrEqual && c <= 0) {
			return isTrue
		}
	}
	return isFalse
}

// matchSubstrings matches a folded value against the folded pattern
// initial*any*...*final, each piece consumed left to right so pieces never
// overlap.
func (f *filter) matchSubstrings(v string) bool {
	fold := func(s string) string { return strings.ToLower(collapseSpaces(s)) }
	if f.initial != "" {
		p := fold(f.initial)
		if !strings.HasPrefix(v, p) {
			return false
		}
		v = v[len(p):]
	}
	for _, a := range f.any {
		p := fold(a)
		i := strings.Index(v, p)
		if i < 0 {
			return false
		}
		v = v[i+len(p):]
	}
	if f.final != "" {
		return strings.HasSuffix(v, fold(f.final))
	}
	return true
}

// collapseSpaces turns runs of whitespace into one space but, unlike
// foldValue, keeps a leading or trailing one: inside a substring pattern
// those spaces are significant.
func collapseSpaces(s string) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}
