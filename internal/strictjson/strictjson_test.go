package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

type doc struct {
	Name   string            `json:"name"`
	Data   []byte            `json:"data"`
	Labels map[string]string `json:"labels,omitempty"`
}

// TestUnmarshalKeepsEncodingJSONSemantics: what encoding/json decoded,
// Unmarshal decodes to the same value.
func TestUnmarshalKeepsEncodingJSONSemantics(t *testing.T) {
	for _, in := range []string{
		`{"name":"a","data":"AAEC","labels":{"k":"v"}}`,
		`{"NAME":"a","Data":"AAEC"}`,       // names match without regard to case
		`{"name":"a","name":"b"}`,          // the last duplicate wins
		" \n{\"data\":null}\t\n",           // white space around the document
		`{"name":"\u00e9\ud83d\ude00"}`,    // escapes
		`{"labels":{}}`,                    // an empty map stays empty, not nil
		`{"name":"a","data":"AAEC"} ` + "", // trailing white space only
	} {
		var got, want doc
		if err := Unmarshal([]byte(in), &got); err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		dec := json.NewDecoder(bytes.NewReader([]byte(in)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("%s: encoding/json: %v", in, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v, encoding/json gives %+v", in, got, want)
		}
	}
}

// TestUnmarshalIsStrict: unknown members, trailing data and malformed
// documents are errors; an unknown member is named, and a bad value is
// never quoted (it may be a secret).
func TestUnmarshalIsStrict(t *testing.T) {
	for _, tc := range []struct{ in, mention string }{
		{`{"name":"a","evil":1}`, "evil"},
		{`{"name":"a"} {}`, ""},
		{`{"name":"a"}x`, ""},
		{`{"name":"a"`, ""},
		{`{"data":"SECRETVALUE!"}`, ""},
		{`{"name":1}`, ""},
		{``, ""},
	} {
		var d doc
		err := Unmarshal([]byte(tc.in), &d)
		if err == nil {
			t.Errorf("%q: accepted", tc.in)
			continue
		}
		if !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%q: %v, want it to name %q", tc.in, err, tc.mention)
		}
		if strings.Contains(err.Error(), "SECRETVALUE") {
			t.Errorf("%q: the error quotes the value: %v", tc.in, err)
		}
	}
}

// TestErrorsNameTheFieldNotGoTypes: a value of the wrong kind is an
// *Error naming the member's JSON path and what it takes, in words a
// client of the API knows, never Go's type names or the value.
func TestErrorsNameTheFieldNotGoTypes(t *testing.T) {
	for _, tc := range []struct{ in, field, want string }{
		{`{"data":"not base64 SECRET"}`, "data", `field "data": expected base64 bytes (standard alphabet, with padding)`},
		{`{"data":5}`, "data", `field "data": expected base64 bytes, got a number`},
		{`{"name":true}`, "name", `field "name": expected a string, got true or false`},
		{`{"labels":{"k":[]}}`, "labels.k", `field "labels.k": expected a string, got a list`},
		{`{"labels":"k=v"}`, "labels", `field "labels": expected an object, got a string`},
		{`"doc"`, "", `expected an object, got a string`},
		{`{"evil":1}`, "", `unknown field "evil"`},
		{`{"name":"a"`, "", `malformed JSON at byte 11: unexpected end of JSON input`},
	} {
		var d doc
		err := Unmarshal([]byte(tc.in), &d)
		var e *Error
		if !errors.As(err, &e) || e.Field != tc.field || err.Error() != tc.want {
			t.Errorf("%s: got %v; want %q (field %q)", tc.in, err, tc.want, tc.field)
		}
		for _, goWord := range []string{"Go ", "struct", "uint8", "[]", "map[", "doc", "json:", "SECRET"} {
			if err != nil && strings.Contains(err.Error(), goWord) {
				t.Errorf("%s: %q contains %q", tc.in, err, goWord)
			}
		}
	}
}
