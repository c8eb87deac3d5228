package api

import (
	"os"
	"regexp"
	"slices"
	"strconv"
	"testing"
)

// TestAPIDocListsEveryCode: docs/API.md's table of errors has a row for
// every code, with its status, and none that does not exist.
func TestAPIDocListsEveryCode(t *testing.T) {
	doc, err := os.ReadFile("../docs/API.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| (\\d{3}) \\|").FindAllStringSubmatch(string(doc), -1)
	var documented []Code
	for _, r := range rows {
		c := Code(r[1])
		documented = append(documented, c)
		if _, ok := codes[c]; !ok {
			t.Errorf("docs/API.md documents code %q, which does not exist", c)
		} else if strconv.Itoa(c.Status()) != r[2] {
			t.Errorf("docs/API.md: %q is %s; the code answers %d", c, r[2], c.Status())
		}
	}
	for _, c := range Codes() {
		if !slices.Contains(documented, c) {
			t.Errorf("docs/API.md does not document code %q", c)
		}
	}
}
