package decoders

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// LoadCodec reads a codec file of The Things Stack device repository (vendor/<vendor>/
// <model>-codec.yaml): its uplinkDecoder's script and example vectors become a Template, so
// that a published decoder can be tested as it is with `sluice decode --test`. Downlink parts
// are ignored. The template is named by the codec's directory and file name.
func LoadCodec(path string) (*Template, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("codec %s: %w", path, err)
	}
	var codec struct {
		UplinkDecoder *struct {
			FileName string    `yaml:"fileName"`
			Examples []Example `yaml:"examples"`
		} `yaml:"uplinkDecoder"`
	}
	if err := yaml.Unmarshal(raw, &codec); err != nil {
		return nil, fmt.Errorf("codec %s: %w", path, err)
	}
	if codec.UplinkDecoder == nil || codec.UplinkDecoder.FileName == "" {
		return nil, fmt.Errorf("codec %s: no uplinkDecoder.fileName", path)
	}
	dir := filepath.Dir(path)
	abs, _ := filepath.Abs(dir)
	model := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".yaml"), "-codec")
	return &Template{
		Name:     model,
		Vendor:   filepath.Base(abs),
		Model:    model,
		Examples: codec.UplinkDecoder.Examples,
		Decoder:  codec.UplinkDecoder.FileName,
		Dir:      dir,
		ID:       filepath.Base(abs) + "/" + model,
	}, nil
}

// IsCodec reports whether path names a codec file of The Things Stack device repository.
func IsCodec(path string) bool {
	return strings.HasSuffix(path, "-codec.yaml")
}
