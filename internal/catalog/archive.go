package catalog

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Limits bound what Extract accepts from an archive.
type Limits struct {
	MaxFiles     int
	MaxFileBytes int64
	MaxTotal     int64
}

// DefaultLimits returns limits that fit any reasonable package.
func DefaultLimits() Limits {
	return Limits{MaxFiles: 10_000, MaxFileBytes: 16 << 20, MaxTotal: 128 << 20}
}

// ArchiveError is an archive that Extract refused.
type ArchiveError struct {
	Entry  string
	Reason string
}

func (e *ArchiveError) Error() string {
	if e.Entry == "" {
		return "unsafe package archive: " + e.Reason
	}
	return fmt.Sprintf("unsafe package archive: entry %q: %s", e.Entry, e.Reason)
}

// Pack writes the files below dir of fsys as a gzipped tar archive with paths
// relative to dir. The archive is deterministic: sorted entries, no times, no
// owners, so the same files always give the same digest.
func Pack(w io.Writer, fsys fs.FS, dir string) error {
	gz, _ := gzip.NewWriterLevel(w, gzip.BestCompression)
	tw := tar.NewWriter(gz)
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, dir), "/")
		if rel == "" {
			return nil
		}
		if d.IsDir() {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755, Format: tar.FormatPAX})
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: 0o644, Size: int64(len(b)), Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// Digest returns "sha256:<hex>" of b.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Extract unpacks a gzipped tar archive into dest, which must not exist yet. It
// refuses absolute paths, paths that leave dest, links, devices, and archives
// beyond limits; on error dest is removed.
func Extract(r io.Reader, dest string, lim Limits) (err error) {
	if _, err := os.Lstat(dest); err == nil {
		return fmt.Errorf("extracting into %s: it already exists", dest)
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dest)
		}
	}()
	gz, err := gzip.NewReader(r)
	if err != nil {
		return &ArchiveError{Reason: "not a gzip file: " + err.Error()}
	}
	tr := tar.NewReader(gz)
	var files int
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return &ArchiveError{Reason: "corrupt tar stream: " + err.Error()}
		}
		name := h.Name
		clean := path.Clean(strings.TrimPrefix(name, "./"))
		switch {
		case strings.Contains(name, "\\"):
			return &ArchiveError{Entry: name, Reason: "backslashes are not allowed in paths"}
		case path.IsAbs(name) || filepath.IsAbs(name):
			return &ArchiveError{Entry: name, Reason: "absolute paths are not allowed"}
		case clean == ".." || strings.HasPrefix(clean, "../"):
			return &ArchiveError{Entry: name, Reason: "the path leaves the package directory"}
		}
		target := filepath.Join(dest, filepath.FromSlash(clean))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			files++
			if files > lim.MaxFiles {
				return &ArchiveError{Reason: fmt.Sprintf("more than %d files", lim.MaxFiles)}
			}
			if h.Size > lim.MaxFileBytes {
				return &ArchiveError{Entry: name, Reason: fmt.Sprintf("larger than %d bytes", lim.MaxFileBytes)}
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil {
				return &ArchiveError{Entry: name, Reason: "cannot create the file (duplicate entry?): " + err.Error()}
			}
			// Count what is really read: a header may understate the size.
			n, err := io.Copy(f, io.LimitReader(tr, lim.MaxFileBytes+1))
			cerr := f.Close()
			if err != nil {
				return &ArchiveError{Entry: name, Reason: "corrupt data: " + err.Error()}
			}
			if cerr != nil {
				return cerr
			}
			total += n
			if n > lim.MaxFileBytes {
				return &ArchiveError{Entry: name, Reason: fmt.Sprintf("larger than %d bytes", lim.MaxFileBytes)}
			}
			if total > lim.MaxTotal {
				return &ArchiveError{Reason: fmt.Sprintf("more than %d bytes in total", lim.MaxTotal)}
			}
		case tar.TypeSymlink, tar.TypeLink:
			return &ArchiveError{Entry: name, Reason: "links are not allowed in package archives"}
		case tar.TypeXGlobalHeader:
		default:
			return &ArchiveError{Entry: name, Reason: fmt.Sprintf("entries of type %q are not allowed", string(h.Typeflag))}
		}
	}
}

// TreeDigest returns "sha256:<hex>" over the files below dir of fsys: their
// slash-separated paths and contents, in sorted order. It identifies a package
// version's content independently of how it was archived, for lockfiles.
func TreeDigest(fsys fs.FS, dir string) (string, error) {
	h := sha256.New()
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, dir), "/")
		fmt.Fprintf(h, "%d:%s\x00%d:", len(rel), rel, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
