package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/template"
)

// formatValue is --format: "table" (the default), "json", or a Go
// template. A template runs on the JSON document of each item (of a
// listing) or of the one object (of an inspection), so its fields are the
// JSON field names: '{{.name}} {{.id}}', '{{json .labels}}'.
type formatValue struct {
	value string
	tmpl  *template.Template
}

// outputFlag defines --format on fs for a listing or inspecting command.
func outputFlag(fs *flag.FlagSet) *formatValue {
	f := &formatValue{value: "table"}
	fs.Var(f, "format", "output `FORMAT`: table, json, or a Go template on the JSON fields, such as '{{.id}}'")
	return f
}

// templateFuncs are the functions a --format template may call besides
// text/template's own.
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"join": func(v any, sep string) string {
		items, _ := v.([]any)
		parts := make([]string, len(items))
		for i, it := range items {
			parts[i] = fmt.Sprint(it)
		}
		return strings.Join(parts, sep)
	},
	"upper": strings.ToUpper,
	"lower": strings.ToLower,
}

func (f *formatValue) String() string {
	if f == nil {
		return ""
	}
	return f.value
}

func (f *formatValue) Set(s string) error {
	switch {
	case s == "table" || s == "json":
		f.value, f.tmpl = s, nil
		return nil
	case !strings.Contains(s, "{{"):
		return errors.New("want table, json or a Go template such as '{{.id}}'")
	}
	t, err := template.New("--format").Funcs(templateFuncs).Option("missingkey=error").Parse(s)
	if err != nil {
		return fmt.Errorf("not a valid template: %v", strings.TrimPrefix(err.Error(), "template: "))
	}
	f.value, f.tmpl = s, t
	return nil
}

// doc reports whether the output is a document (JSON or a template)
// rather than the table.
func (f *formatValue) doc() bool { return f.value != "table" }

// template reports whether the output is a template.
func (f *formatValue) template() bool { return f.tmpl != nil }

// write prints v as JSON, or through the template followed by a newline.
func (f *formatValue) write(w io.Writer, v any) error {
	if f.tmpl == nil {
		return writeJSON(w, v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return err
	}
	var out bytes.Buffer
	if err := f.tmpl.Execute(&out, doc); err != nil {
		return usagef("the --format template failed: %v; its fields are the JSON field names (see --format json)", strings.TrimPrefix(err.Error(), "template: "))
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}
