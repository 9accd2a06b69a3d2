package plugin

import "os"

// notifyResize does nothing: Windows consoles send no signal on a size change.
func notifyResize(chan<- os.Signal) {}
