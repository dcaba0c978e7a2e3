package workspace

import (
	"io/fs"
	"path/filepath"
)

// walkFiles calls fn with the path of every regular file under root.
func walkFiles(root string, fn func(path string)) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fn(p)
		}
		return nil
	})
}
