package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

const keyFile = "publisher.key"

// publisherKey returns the key stored in dataDir, generating it on first start. The file is
// readable by its owner only; `herald publish` reads it from the same place.
func publisherKey(dataDir string) (key string, created bool, err error) {
	path := filepath.Join(dataDir, keyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if k := strings.TrimSpace(string(b)); k != "" {
			return k, false, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("read publisher key: %w", err)
	}
	var raw [24]byte
	rand.Read(raw[:])
	key = "hk_" + base64.RawURLEncoding.EncodeToString(raw[:])
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("store publisher key: %w", err)
	}
	return key, true, nil
}
