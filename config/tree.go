package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

var (
	configType   = reflect.TypeFor[Config]()
	secretType   = reflect.TypeFor[Secret]()
	durationType = reflect.TypeFor[time.Duration]()
)

// checkTree walks the parsed YAML against the Config type before decoding.
// yaml.v3's KnownFields stops at the first unknown key and names no path;
// this walk reports every unknown key and every ill-typed value with its
// full dotted path and line, so one run of check-config shows them all.
func checkTree(root *yaml.Node) []error {
	var errs []error
	checkNode(root, configType, "", &errs)
	return errs
}

func checkNode(n *yaml.Node, t reflect.Type, path string, errs *[]error) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // null leaves the default in place
	}
	fail := func(format string, args ...any) {
		*errs = append(*errs, &FieldError{Path: path, Msg: fmt.Sprintf("line %d: ", n.Line) + fmt.Sprintf(format, args...)})
	}

	switch {
	case t == secretType:
		if _, err := secretFromNode(n); err != nil {
			*errs = append(*errs, &FieldError{Path: path, Msg: err.Error()})
		}
		return
	case t == durationType:
		if n.Kind != yaml.ScalarNode || n.Decode(new(time.Duration)) != nil {
			fail("%s is not a duration; write it with a unit, such as \"90s\", \"15m\" or \"12h\"", describeNode(n))
		}
		return
	}

	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			fail("%s where a mapping of keys was expected", describeNode(n))
			return
		}
		checkMapping(n, t, path, errs)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			fail("%s where a list was expected", describeNode(n))
			return
		}
		for i, item := range n.Content {
			checkNode(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	default:
		// yaml.v3 would truncate 6.5 into an int field; only whole numbers pass.
		notWhole := t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64 && n.ShortTag() != "!!int"
		if n.Kind != yaml.ScalarNode || notWhole || n.Decode(reflect.New(t).Interface()) != nil {
			fail("%s is not %s", describeNode(n), kindName(t))
		}
	}
}

func checkMapping(n *yaml.Node, t reflect.Type, path string, errs *[]error) {
	fields := yamlFields(t)
	firstLine := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if key.Value == "<<" && key.ShortTag() == "!!merge" {
			checkMerge(val, t, path, errs)
			continue
		}
		if line, dup := firstLine[key.Value]; dup {
			*errs = append(*errs, &FieldError{Path: joinPath(path, key.Value),
				Msg: fmt.Sprintf("line %d: duplicate key (first given at line %d)", key.Line, line)})
			continue
		}
		firstLine[key.Value] = key.Line
		field, ok := fields[key.Value]
		if !ok {
			msg := fmt.Sprintf("line %d: unknown key", key.Line)
			if guess := closestKey(key.Value, fields); guess != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", guess)
			}
			*errs = append(*errs, &FieldError{Path: joinPath(path, key.Value), Msg: msg})
			continue
		}
		checkNode(val, field.Type, joinPath(path, key.Value), errs)
	}
}

// checkMerge handles "<<: *anchor" (and "<<: [*a, *b]"), whose keys belong
// to the enclosing mapping.
func checkMerge(n *yaml.Node, t reflect.Type, path string, errs *[]error) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.MappingNode:
		checkMapping(n, t, path, errs)
	case yaml.SequenceNode:
		for _, item := range n.Content {
			checkMerge(item, t, path, errs)
		}
	default:
		*errs = append(*errs, &FieldError{Path: path, Msg: fmt.Sprintf("line %d: a merge key (<<) needs a mapping", n.Line)})
	}
}

func yamlFields(t reflect.Type) map[string]reflect.StructField {
	fields := make(map[string]reflect.StructField, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f
	}
	return fields
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.String:
		return "a string"
	default:
		return "a " + t.String()
	}
}

// closestKey suggests the known key nearest to a misspelt one, if any is
// close enough to be a plausible typo.
func closestKey(key string, fields map[string]reflect.StructField) string {
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names) // deterministic choice between equally close keys
	best, bestDist := "", 3
	for _, name := range names {
		if d := editDistance(strings.ToLower(key), name); d < bestDist {
			best, bestDist = name, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
