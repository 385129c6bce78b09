// Command render prints the manifests of a Helm chart the way `helm template` does, on
// machines where Helm cannot be installed (this project's CI). It uses the same engine Helm
// uses — Go's text/template with the sprig function library — plus Helm's own template
// functions (include, tpl, required, toYaml, fromYaml, toJson, lookup), the built-in objects
// (.Values, .Release, .Chart, .Capabilities, .Template) and values from the chart's
// values.yaml deep-merged with each -f file, as Helm merges them. It does not do what needs a
// cluster or Helm itself: lookup returns nothing, hooks are printed, not ordered or run, and
// values.schema.json is checked by the tests (Ajv), not here.
//
// Build and run (GOPATH mode, Debian's golang-go, golang-github-masterminds-sprig-dev and
// golang-github-ghodss-yaml-dev; see scripts/render-chart.sh):
//
//	render -chart deploy/helm/agentgateway -name agw -namespace agentgateway [-f values.yaml …]
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"github.com/ghodss/yaml"
)

type valueFiles []string

func (v *valueFiles) String() string     { return strings.Join(*v, ",") }
func (v *valueFiles) Set(s string) error { *v = append(*v, s); return nil }

// chartMeta holds the Chart.yaml fields templates read (Helm exposes them capitalised).
type chartMeta struct {
	APIVersion  string `json:"apiVersion"`
	Name        string `json:"name"`
	Version     string `json:"version"`
	AppVersion  string `json:"appVersion"`
	Description string `json:"description"`
	Type        string `json:"type"`
	KubeVersion string `json:"kubeVersion"`
}

type apiVersions []string

// Has reports whether the (pretend) cluster serves an API group/version, as Helm's does.
func (a apiVersions) Has(v string) bool {
	for _, x := range a {
		if x == v {
			return true
		}
	}
	return false
}

func main() {
	chartDir := flag.String("chart", "", "chart directory")
	name := flag.String("name", "release", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	var files valueFiles
	flag.Var(&files, "f", "values file (repeatable, later wins)")
	flag.Parse()
	if *chartDir == "" {
		fmt.Fprintln(os.Stderr, "render: -chart is required")
		os.Exit(2)
	}
	out, err := render(*chartDir, *name, *namespace, files)
	if err != nil {
		fmt.Fprintf(os.Stderr, "render: %v\n", err)
		os.Exit(1)
	}
	os.Stdout.WriteString(out)
}

func render(chartDir, releaseName, namespace string, files []string) (string, error) {
	var meta chartMeta
	if err := readYAML(filepath.Join(chartDir, "Chart.yaml"), &meta); err != nil {
		return "", err
	}
	values := map[string]interface{}{}
	if err := readYAML(filepath.Join(chartDir, "values.yaml"), &values); err != nil {
		return "", err
	}
	for _, f := range files {
		override := map[string]interface{}{}
		if err := readYAML(f, &override); err != nil {
			return "", err
		}
		values = merge(values, override)
	}

	root := template.New("gotpl")
	// Helm's default: a missing key renders as empty, not as an error.
	root.Option("missingkey=zero")
	includeDepth := 0
	funcs := sprig.TxtFuncMap()
	// Helm removes these two: templates must not read the renderer's environment.
	delete(funcs, "env")
	delete(funcs, "expandenv")
	funcs["toYaml"] = toYAML
	funcs["fromYaml"] = fromYAML
	funcs["toJson"] = toJSON
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil || v == "" {
			return nil, errors.New(msg)
		}
		return v, nil
	}
	funcs["lookup"] = func(string, string, string, string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		includeDepth++
		defer func() { includeDepth-- }()
		if includeDepth > 1000 {
			return "", fmt.Errorf("include %q: recursion too deep", name)
		}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = t.Execute(&buf, data)
		return buf.String(), err
	}
	root.Funcs(funcs)

	templatesDir := filepath.Join(chartDir, "templates")
	entries, err := os.ReadDir(templatesDir)
	if err != nil {
		return "", err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		text, err := os.ReadFile(filepath.Join(templatesDir, e.Name()))
		if err != nil {
			return "", err
		}
		full := path.Join(meta.Name, "templates", e.Name())
		if _, err := root.New(full).Parse(string(text)); err != nil {
			return "", err
		}
		names = append(names, full)
	}
	sort.Strings(names)

	var out strings.Builder
	for _, full := range names {
		base := path.Base(full)
		// Partials (_*.tpl) define templates only; NOTES.txt is shown to the user, not applied.
		if strings.HasPrefix(base, "_") || base == "NOTES.txt" {
			continue
		}
		data := map[string]interface{}{
			"Values":  values,
			"Chart":   meta,
			"Release": map[string]interface{}{"Name": releaseName, "Namespace": namespace, "Service": "Helm", "IsInstall": true, "IsUpgrade": false, "Revision": 1},
			"Capabilities": map[string]interface{}{
				"KubeVersion": map[string]interface{}{"Version": "v1.30.0", "Major": "1", "Minor": "30", "GitVersion": "v1.30.0"},
				"APIVersions": apiVersions{"v1", "apps/v1", "batch/v1", "policy/v1", "networking.k8s.io/v1"},
			},
			"Template": map[string]interface{}{"Name": full, "BasePath": path.Join(meta.Name, "templates")},
		}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, full, data); err != nil {
			return "", err
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if strings.TrimSpace(text) == "" {
			continue
		}
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", full, strings.TrimSpace(strings.TrimLeft(text, "-\n")))
	}
	return out.String(), nil
}

// readYAML decodes YAML into v keeping numbers exact (json.Number), as Helm reads values.
func readYAML(file string, v interface{}) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return fmt.Errorf("%s: %v", file, err)
	}
	if string(js) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %v", file, err)
	}
	return nil
}

// merge deep-merges override into base: maps merge key by key, anything else is replaced,
// and a null in the override deletes the key (Helm's coalescing rules for user values).
func merge(base, override map[string]interface{}) map[string]interface{} {
	out := map[string]interface{}{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range override {
		if v == nil {
			delete(out, k)
			continue
		}
		if bm, ok := out[k].(map[string]interface{}); ok {
			if om, ok := v.(map[string]interface{}); ok {
				out[k] = merge(bm, om)
				continue
			}
		}
		out[k] = v
	}
	return out
}

func toYAML(v interface{}) string {
	data, err := yaml.Marshal(v)
	if err != nil {
		// Helm swallows the error the same way: the template sees an empty string.
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func fromYAML(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func toJSON(v interface{}) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(data)
}
