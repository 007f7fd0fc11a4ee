// A gitfaas wasm function: a WASI command module, built from this file with
//
//	GOOS=wasip1 GOARCH=wasm go build -o main.wasm .
//
// It reads the job's input (JSON) on stdin and writes one JSON value on stdout:
// a greeting for `name` and the number of words in `text`. Its stderr is the
// job's log; a non-zero exit fails the job.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

type input struct {
	Name string `json:"name"`
	Text string `json:"text"`
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "input is not the expected JSON object:", err)
		os.Exit(2)
	}
	if in.Name == "" {
		in.Name = "world"
	}
	fmt.Fprintf(os.Stderr, "greeting %s\n", in.Name)
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"greeting": "hello, " + in.Name,
		"words":    len(strings.Fields(in.Text)),
		"args":     os.Args[1:],
	})
}
