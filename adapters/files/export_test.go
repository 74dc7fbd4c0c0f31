package files

import (
	"errors"
	"os"
)

// UseFallbacks makes d commit without renameat2 (level 1: by hard link) or
// without renameat2 and hard links (level 2: through an O_EXCL placeholder),
// as on systems or file systems that lack them.
func UseFallbacks(d *Downloads, level int) {
	d.noReplace = func(*os.Root, string, string) error { return errNoReplaceUnsupported }
	if level >= 2 {
		d.link = func(*os.Root, string, string) error { return errors.ErrUnsupported }
	}
}

// IsPartLike exposes isPartLike to the fuzz test.
var IsPartLike = isPartLike
