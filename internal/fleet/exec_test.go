package fleet

import "os/exec"

var execCommand = exec.Command
