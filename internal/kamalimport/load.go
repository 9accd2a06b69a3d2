package kamalimport

import (
	"fmt"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// destinationFile is Kamal's name for a destination's file: deploy.yml → deploy.staging.yml.
func destinationFile(config, destination string) string {
	ext := filepath.Ext(config)
	return strings.TrimSuffix(config, ext) + "." + destination + ".yml"
}

// loadConfig reads the config file and, with a destination, its destination file merged over
// it as Kamal merges them (maps deeply, everything else replaced by the later file).
func loadConfig(in Input, warn func(key, msg string)) (map[string]any, []string, error) {
	files := []string{in.ConfigPath}
	if in.Destination != "" {
		files = append(files, destinationFile(in.ConfigPath, in.Destination))
	}
	merged := map[string]any{}
	for _, f := range files {
		raw, err := in.FS.ReadFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("reading %s: %w", f, err)
		}
		text, err := renderERB(f, string(raw), in.getenv, warn)
		if err != nil {
			return nil, nil, err
		}
		var m map[string]any
		if err := yaml.Unmarshal([]byte(text), &m); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", f, err)
		}
		deepMerge(merged, m)
	}
	return merged, files, nil
}

// deepMerge merges src into dst as ActiveSupport's Hash#deep_merge!: nested maps are merged,
// any other value of src replaces dst's.
func deepMerge(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				deepMerge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}
