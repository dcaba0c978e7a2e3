package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/logs"
	"berth.dev/berth/internal/workspace"
)

// day2Commands returns the commands of running an installed app: logs,
// events, runbooks and incidents.
func day2Commands(app *App) []*cobra.Command {
	return []*cobra.Command{
		newLogsCmd(app),
		newEventsCmd(app),
	}
}

// appTarget is an installed app and the cluster it runs in.
type appTarget struct {
	app  *workspace.App
	cfg  *rest.Config
	cs   kubernetes.Interface
	refs []apply.ObjectRef
}

// target opens the workspace, the app and its inventory in the cluster.
func (a *App) target(ctx context.Context, f *wsFlags, name string) (*appTarget, error) {
	ws, err := workspace.Open(f.dir)
	if err != nil {
		return nil, err
	}
	wa, err := ws.App(name)
	if err != nil {
		return nil, err
	}
	cfg, err := clusterConfig(ws.Config.Cluster)()
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	eng, err := apply.NewEngine(cfg, apply.DefaultOptions())
	if err != nil {
		return nil, err
	}
	inv, err := eng.Inventory(ctx, name, wa.Namespace)
	if err != nil {
		return nil, explain(err, cfg.Host)
	}
	if len(inv.Entries) == 0 {
		return nil, fmt.Errorf("app %s is not deployed to the cluster (no inventory in namespace %s); deploy it with 'berth deploy %s'", name, wa.Namespace, name)
	}
	t := &appTarget{app: wa, cfg: cfg, cs: cs}
	for _, e := range inv.Entries {
		t.refs = append(t.refs, e.Ref())
	}
	return t, nil
}

func newLogsCmd(app *App) *cobra.Command {
	var f wsFlags
	var opts logs.Options
	var out output
	cmd := &cobra.Command{
		Use:   "logs APP [COMPONENT]",
		Short: "Show the logs of every pod and container of an app, merged",
		Long: `Show the logs of an app: every container of every pod of its workloads
(found from what berth applied for it, never by name), each line prefixed with
pod/container, coloured per pod on a terminal. A COMPONENT keeps the workloads
named COMPONENT or APP-COMPONENT, or labelled app.kubernetes.io/component.

Without --follow, each container's log is printed once, pods in name order.
With --follow, lines are printed as they come and pods that start afterwards
(a new replica, a restarted container) join the stream. -o json prints one
JSON object per line: namespace, pod, container, line.`,
		Example: `  berth logs shop
  berth logs shop web -f --since 10m
  berth logs db --previous`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			t, err := app.target(ctx, &f, args[0])
			if err != nil {
				return err
			}
			component := ""
			if len(args) == 2 {
				component = args[1]
			}
			sel, err := logs.Select(ctx, t.cs, args[0], t.refs, component)
			if err != nil {
				return err
			}
			lines, err := logs.Stream(ctx, t.cs, sel, opts)
			if err != nil {
				return err
			}
			colour := out == outputText && isTerminal(app.Out)
			failed := 0
			for l := range lines {
				if l.Err != nil {
					failed++
					fmt.Fprintf(app.Err, "! %v\n", l.Err)
					continue
				}
				if out == outputJSON {
					if err := writeJSONLine(app.Out, l); err != nil {
						return err
					}
					continue
				}
				fmt.Fprintf(app.Out, "%s %s\n", linePrefix(l, colour), l.Text)
			}
			if failed > 0 && ctx.Err() == nil {
				return fmt.Errorf("the logs of %d container(s) could not be read (see above)", failed)
			}
			return nil
		},
	}
	f.add(cmd)
	addOutputFlag(cmd, &out)
	cmd.Flags().BoolVarP(&opts.Follow, "follow", "f", false, "keep printing new lines, and the logs of pods that start afterwards")
	cmd.Flags().DurationVar(&opts.Since, "since", 0, "only lines newer than this, e.g. 10m")
	cmd.Flags().BoolVar(&opts.Previous, "previous", false, "the logs of each container's previous run (those that restarted)")
	cmd.Flags().Int64Var(&opts.TailLines, "tail", 0, "start this many lines before the end of each log (0: all)")
	return cmd
}

// writeJSONLine writes v as one line of JSON.
func writeJSONLine(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

// podColours are the ANSI colours pods are told apart by, as stern does.
var podColours = []string{"31", "32", "33", "34", "35", "36", "91", "92", "93", "94", "95", "96"}

func linePrefix(l logs.Line, colour bool) string {
	if !colour {
		return l.Pod + "/" + l.Container
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(l.Namespace + "/" + l.Pod))
	c := podColours[h.Sum32()%uint32(len(podColours))]
	return "\x1b[" + c + "m" + l.Pod + "\x1b[0m/\x1b[2m" + l.Container + "\x1b[0m"
}

func newEventsCmd(app *App) *cobra.Command {
	var f wsFlags
	var out output
	cmd := &cobra.Command{
		Use:   "events APP",
		Short: "Show the Kubernetes Events of an app's objects, oldest first",
		Long: `Show the Events about an app's objects (those berth applied for it), the pods
and volume claims of its workloads, and the ReplicaSets and Jobs they own,
oldest first. -o json prints them as a list.`,
		Example: `  berth events shop
  berth events shop -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			t, err := app.target(ctx, &f, args[0])
			if err != nil {
				return err
			}
			sel, err := logs.Select(ctx, t.cs, args[0], t.refs, "")
			if err != nil {
				return err
			}
			evs, err := logs.Events(ctx, t.cs, t.refs, sel)
			if err != nil {
				return err
			}
			if out == outputJSON {
				if evs == nil {
					evs = []logs.Event{}
				}
				return writeJSON(app.Out, evs)
			}
			if len(evs) == 0 {
				fmt.Fprintf(app.Out, "No events about %s (the API server keeps them for an hour by default).\n", args[0])
				return nil
			}
			tw := tabwriter.NewWriter(app.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "LAST SEEN\tTYPE\tREASON\tOBJECT\tMESSAGE")
			for _, e := range evs {
				msg := strings.TrimSpace(e.Message)
				if e.Count > 1 {
					msg += fmt.Sprintf(" (x%d)", e.Count)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ago(e.Time), e.Type, e.Reason, e.Object, msg)
			}
			return tw.Flush()
		},
	}
	f.add(cmd)
	addOutputFlag(cmd, &out)
	return cmd
}

// ago is how long before now t was, rounded as kubectl does.
func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
