// Command vulngate reads `govulncheck -format json` on stdin and decides what fails make lint:
// a vulnerability the code calls in a module it requires fails; one in the Go standard library
// is reported with the Go release that fixes it, since the standard library is the toolchain
// the machine builds with (the Dockerfile's builder image takes the newest patch release).
// Imported but uncalled vulnerabilities are left to govulncheck's own report.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
)

type finding struct {
	OSV          string `json:"osv"`
	FixedVersion string `json:"fixed_version"`
	Trace        []struct {
		Module   string `json:"module"`
		Version  string `json:"version"`
		Package  string `json:"package"`
		Function string `json:"function"`
	} `json:"trace"`
}

func main() {
	failed, err := gate(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vulngate:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

func gate(in io.Reader, out io.Writer) (failed bool, err error) {
	dec := json.NewDecoder(in)
	called := map[string]finding{} // by OSV id: the first called trace seen
	for {
		var msg struct {
			Finding *finding `json:"finding"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return false, fmt.Errorf("reading govulncheck's JSON: %w", err)
		}
		f := msg.Finding
		if f == nil || len(f.Trace) == 0 || f.Trace[0].Function == "" {
			continue
		}
		if _, seen := called[f.OSV]; !seen {
			called[f.OSV] = *f
		}
	}
	ids := make([]string, 0, len(called))
	for id := range called {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		f := called[id]
		t := f.Trace[0]
		if t.Module == "stdlib" {
			fmt.Fprintf(out, "vulngate: %s in the Go standard library (%s, go %s): build releases with Go %s or newer\n",
				id, t.Package, t.Version, f.FixedVersion)
			continue
		}
		failed = true
		fmt.Fprintf(out, "vulngate: FAIL %s in %s@%s (%s.%s is called): fixed in %s\n", id, t.Module, t.Version, t.Package, t.Function, f.FixedVersion)
	}
	if !failed {
		fmt.Fprintf(out, "vulngate: no called vulnerability in a required module (%d in the standard library, listed above)\n", len(ids))
	}
	return failed, nil
}
