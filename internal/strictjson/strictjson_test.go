package strictjson

import (
	"bytes"
	"encoding/json"
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
