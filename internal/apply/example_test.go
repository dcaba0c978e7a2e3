package apply_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"k8s.io/client-go/tools/clientcmd"

	"berth.dev/berth/internal/apply"
)

// Apply a directory of manifests as the app "web", prune what it no longer
// holds, and wait until everything is healthy.
func Example() {
	ctx := context.Background()
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		panic(err)
	}
	engine, err := apply.NewEngine(cfg, apply.DefaultOptions())
	if err != nil {
		panic(err)
	}
	objs, err := apply.ReadManifests(os.Stdin, "manifests/")
	if err != nil {
		panic(err)
	}
	opts := apply.DefaultApplyOptions()
	opts.App, opts.Namespace = "web", "web"
	opts.Prune, opts.Wait = true, true
	opts.Events = func(ev apply.Event) {
		if ev.Type == apply.EventWaiting {
			fmt.Printf("waiting for %s: %s\n", ev.Object, ev.Message)
		}
	}
	res, err := engine.Apply(ctx, objs, opts)
	var failed *apply.ObjectsError
	if errors.As(err, &failed) {
		// The other objects were applied; these were not.
		for _, c := range failed.Failed {
			fmt.Println(c.Error)
		}
	}
	if res != nil {
		fmt.Printf("%d created, %d updated, %d unchanged, %d deleted\n",
			res.Count(apply.ActionCreate), res.Count(apply.ActionUpdate), res.Count(apply.ActionUnchanged), res.Count(apply.ActionDelete))
	}
}
