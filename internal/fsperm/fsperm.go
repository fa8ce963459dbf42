// Package fsperm holds the file permissions of what Eventmart writes to
// disk — databases, the event log, secrets, keys, exports — and the check
// at start that warns about wider ones. Only the user Eventmart runs as
// may read them: they hold card data, password hashes and the event log.
package fsperm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// The modes of the directories and files Eventmart creates.
const (
	Dir  fs.FileMode = 0o700
	File fs.FileMode = 0o600
)

// MkdirAll creates dir and its missing parents with mode Dir.
func MkdirAll(dir string) error { return os.MkdirAll(dir, Dir) }

// Create makes the file at path, empty and of mode File, unless it exists,
// creating its directory too. Database drivers create their files with
// 0644; creating the file first makes them keep its mode (SQLite gives its
// -wal and -shm files the mode of the database).
func Create(path string) error {
	if err := MkdirAll(filepath.Dir(path)); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, File)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// maxReported bounds the paths Wide returns: the first few tell the
// operator what to fix.
const maxReported = 10

// Wide returns the paths under dir (dir included) that others than their
// owner may read, write or enter — at most 10 — and how many there are in
// all. A dir that does not exist has none.
func Wide(dir string) (paths []string, n int, err error) {
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // gone meanwhile
		}
		if info.Mode().Perm()&0o077 != 0 {
			n++
			if len(paths) < maxReported {
				paths = append(paths, fmt.Sprintf("%s (%v)", path, info.Mode().Perm()))
			}
		}
		return nil
	})
	return paths, n, err
}
