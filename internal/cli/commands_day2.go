package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/controller"
	"berth.dev/berth/internal/gitcmd"
	"berth.dev/berth/internal/incident"
	"berth.dev/berth/internal/logs"
	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/runbook"
	"berth.dev/berth/internal/workspace"
)

// day2Commands returns the commands of running an installed app: logs,
// events, runbooks and incidents.
func day2Commands(app *App) []*cobra.Command {
	return []*cobra.Command{
		newLogsCmd(app),
		newEventsCmd(app),
		newRunbookCmd(app),
		newIncidentsCmd(app),
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

func newRunbookCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "runbook",
		Short: "List, show and run an app's runbooks; list the runs",
		Long: `Runbooks are a package's day-2 procedures. A documentation runbook is a page
to read ('berth runbook show' prints it). An executable runbook has typed
parameters and steps berth runs: configuration commits, deploys, Jobs, scaling,
growing a StatefulSet's volumes. Every run is recorded in the workspace
(runs/APP/) as a commit: who, when, the parameters, each step's result, the
commits it made.`,
	}
	cmd.AddCommand(newRunbookListCmd(app), newRunbookShowCmd(app), newRunbookRunCmd(app), newRunbookRunsCmd(app))
	return cmd
}

func newRunbookListCmd(app *App) *cobra.Command {
	var f wsFlags
	var out output
	cmd := &cobra.Command{
		Use:     "list APP",
		Short:   "List the runbooks of an app's package",
		Example: `  berth runbook list db`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := app.env(&f, nil)
			if err != nil {
				return err
			}
			inst, err := env.Installed(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			rbs := inst.Package.Runbooks
			if out == outputJSON {
				if rbs == nil {
					rbs = []pkgspec.Runbook{}
				}
				return writeJSON(app.Out, rbs)
			}
			if len(rbs) == 0 {
				fmt.Fprintf(app.Out, "Package %s has no runbooks.\n", inst.Package.Name)
				return nil
			}
			tw := tabwriter.NewWriter(app.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKIND\tTITLE")
			for _, r := range rbs {
				kind := "document"
				if r.Executable() {
					kind = "steps"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, kind, r.Title)
			}
			return tw.Flush()
		},
	}
	f.add(cmd)
	addOutputFlag(cmd, &out)
	return cmd
}

func newRunbookShowCmd(app *App) *cobra.Command {
	var f wsFlags
	var out output
	cmd := &cobra.Command{
		Use:     "show APP NAME",
		Short:   "Show a runbook: its parameters and steps, or its document",
		Example: `  berth runbook show db resize-storage`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := app.env(&f, nil)
			if err != nil {
				return err
			}
			inst, err := env.Installed(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			rb, err := runbook.Find(inst, args[1])
			if err != nil {
				return err
			}
			if out == outputJSON {
				return writeJSON(app.Out, rb)
			}
			return printRunbook(app.Out, inst.Files, rb)
		},
	}
	f.add(cmd)
	addOutputFlag(cmd, &out)
	return cmd
}

func printRunbook(w io.Writer, files fs.FS, rb pkgspec.Runbook) error {
	fmt.Fprintf(w, "%s", rb.Name)
	if rb.Title != "" {
		fmt.Fprintf(w, ": %s", rb.Title)
	}
	fmt.Fprintln(w)
	if rb.Description != "" {
		fmt.Fprintf(w, "\n%s\n", rb.Description)
	}
	if len(rb.Parameters) > 0 {
		fmt.Fprintf(w, "\nPARAMETERS\n")
		for _, q := range rb.Parameters {
			var attrs []string
			if q.Required {
				attrs = append(attrs, "required")
			}
			if q.Default != nil {
				attrs = append(attrs, fmt.Sprintf("default %v", q.Default))
			}
			if q.Generate != nil {
				attrs = append(attrs, "generated when not given")
			}
			if q.Min != nil {
				attrs = append(attrs, fmt.Sprintf("min %v", q.Min))
			}
			if q.Max != nil {
				attrs = append(attrs, fmt.Sprintf("max %v", q.Max))
			}
			fmt.Fprintf(w, "  %s (%s%s)  %s\n", q.Name, q.Type, prefixed(", ", strings.Join(attrs, ", ")), q.Description)
		}
	}
	if len(rb.Checks) > 0 {
		fmt.Fprintf(w, "\nCHECKS (before anything changes)\n")
		for _, c := range rb.Checks {
			cond := ""
			if c.Condition != "" {
				cond = " with condition " + c.Condition
			}
			fmt.Fprintf(w, "  %s %s exists%s\n", c.Kind, c.Name, cond)
		}
	}
	if len(rb.Steps) > 0 {
		fmt.Fprintf(w, "\nSTEPS\n")
		for i, s := range rb.Steps {
			action, _ := s.Action()
			name := s.Name
			if name == "" {
				name = action
			}
			fmt.Fprintf(w, "  %d. %s (%s)\n", i+1, name, action)
		}
	}
	if rb.File != "" {
		doc, err := fs.ReadFile(files, rb.File)
		if err != nil {
			return fmt.Errorf("reading %s of the package: %w", rb.File, err)
		}
		fmt.Fprintf(w, "\n%s", doc)
	}
	return nil
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

func newRunbookRunCmd(app *App) *cobra.Command {
	var f wsFlags
	var sets []string
	var dryRun bool
	var out output
	cmd := &cobra.Command{
		Use:   "run APP NAME [--set PARAM=VALUE...] [--dry-run]",
		Short: "Run a runbook: check everything, run its steps, record the run",
		Long: `Run an executable runbook against an app. berth first checks the parameters
(types, bounds), the runbook's preconditions and that each step can run as
things are; any failure there changes nothing. Then the steps run in order.
A step that fails stops the run, and berth says what state things are in and
how to go on. The run is recorded in runs/APP/ and committed, whatever its
outcome. --dry-run prints the steps and what each would do, and changes nothing.`,
		Example: `  berth runbook run db resize-storage --set size=16Gi --dry-run
  berth runbook run db resize-storage --set size=16Gi
  berth runbook run db backup
  berth runbook run db restore --set backup=nightly`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			env, err := app.env(&f, nil)
			if err != nil {
				return err
			}
			values := map[string]any{}
			for _, kv := range sets {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("--set %q: use PARAM=VALUE, e.g. --set size=16Gi", kv)
				}
				values[k] = v
			}
			opts := runbook.Options{App: args[0], Runbook: args[1], Values: values, DryRun: dryRun}
			if out == outputText {
				opts.Events = func(ev runbook.Event) {
					switch {
					case !ev.Done:
						fmt.Fprintf(app.Err, "• step %d/%d: %s\n", ev.Step, ev.Of, ev.Name)
					case ev.Err != nil:
						fmt.Fprintf(app.Err, "✗ step %d/%d: %s (%s)\n", ev.Step, ev.Of, ev.Name, time.Since(ev.Start).Round(time.Second))
					default:
						fmt.Fprintf(app.Err, "✓ step %d/%d: %s (%s)\n", ev.Step, ev.Of, ev.Name, time.Since(ev.Start).Round(time.Second))
					}
				}
			}
			rec, err := runbook.Run(ctx, env, opts)
			if rec == nil {
				var ue *runbook.UnknownRunbookError
				if errors.As(err, &ue) {
					return fmt.Errorf("%w; 'berth runbook list %s' shows them", err, args[0])
				}
				return err
			}
			if out == outputJSON {
				if werr := writeJSON(app.Out, rec); werr != nil {
					return werr
				}
				if err != nil {
					fmt.Fprintf(app.Err, "Error: %v\n", err)
					return &exitCodeError{code: 1}
				}
				return nil
			}
			printRecord(app.Out, rec)
			if err != nil {
				return fmt.Errorf("%w\nState: %s\nTo go on: %s\nThe run is recorded in %s", err, rec.State, rec.Next, rec.Path())
			}
			return nil
		},
	}
	f.add(cmd)
	addOutputFlag(cmd, &out)
	cmd.Flags().StringArrayVar(&sets, "set", nil, "a parameter, PARAM=VALUE (repeatable)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "check everything and print the steps and what each would do; change nothing")
	return cmd
}

func printRecord(w io.Writer, rec *runbook.Record) {
	if rec.Status == runbook.Planned {
		fmt.Fprintf(w, "Plan of runbook %s on %s (dry run: nothing changed)\n", rec.Runbook, rec.App)
	} else {
		fmt.Fprintf(w, "Runbook %s on %s: %s (recorded in %s)\n", rec.Runbook, rec.App, rec.Status, rec.Path())
	}
	for _, k := range sortedParamNames(rec.Parameters) {
		fmt.Fprintf(w, "  %s = %s\n", k, rec.Parameters[k])
	}
	for i, s := range rec.Steps {
		fmt.Fprintf(w, "%d. %s [%s]\n", i+1, s.Name, s.Status)
		for _, d := range s.Detail {
			fmt.Fprintf(w, "     %s\n", d)
		}
		if s.Error != "" {
			fmt.Fprintf(w, "     error: %s\n", s.Error)
		}
	}
	if len(rec.Commits) > 0 {
		fmt.Fprintf(w, "Commits: %s\n", strings.Join(rec.Commits, ", "))
	}
}

func sortedParamNames(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func newRunbookRunsCmd(app *App) *cobra.Command {
	var f wsFlags
	var out output
	cmd := &cobra.Command{
		Use:     "runs APP",
		Short:   "List the recorded runs of an app's runbooks, oldest first",
		Example: `  berth runbook runs db -o json`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ws, err := workspace.Open(f.dir)
			if err != nil {
				return err
			}
			recs, err := runbook.Records(ws, args[0])
			if err != nil {
				return err
			}
			if out == outputJSON {
				if recs == nil {
					recs = []*runbook.Record{}
				}
				return writeJSON(app.Out, recs)
			}
			if len(recs) == 0 {
				fmt.Fprintf(app.Out, "No runbook runs recorded for %s.\n", args[0])
				return nil
			}
			tw := tabwriter.NewWriter(app.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tRUNBOOK\tSTATUS\tWHO\tSTARTED")
			for _, r := range recs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Runbook, r.Status, r.Who, r.Started.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	f.add(cmd)
	addOutputFlag(cmd, &out)
	return cmd
}

// incidentFlags are the flags of the incidents commands.
type incidentFlags struct {
	ws        wsFlags
	namespace string
}

func (f *incidentFlags) add(cmd *cobra.Command) {
	f.ws.add(cmd)
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", "", "namespace of the incidents (that of the controller's Workspace); all when empty")
}

// recorder opens the workspace's cluster for incidents, and says who is
// acting (the workspace's git identity).
func (f *incidentFlags) recorder(ctx context.Context) (*incident.Recorder, string, error) {
	ws, err := workspace.Open(f.ws.dir)
	if err != nil {
		return nil, "", err
	}
	cfg, err := clusterConfig(ws.Config.Cluster)()
	if err != nil {
		return nil, "", err
	}
	c, err := client.New(cfg, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		return nil, "", err
	}
	name, _ := gitcmd.Run(ctx, ws.Root, nil, "config", "user.name")
	email, _ := gitcmd.Run(ctx, ws.Root, nil, "config", "user.email")
	who := strings.TrimSpace(strings.TrimSpace(string(name)) + " <" + strings.TrimSpace(string(email)) + ">")
	if strings.TrimSpace(string(email)) == "" {
		who = strings.TrimSpace(string(name))
	}
	return &incident.Recorder{Client: c}, who, nil
}

// find returns the incident called name.
func (f *incidentFlags) find(ctx context.Context, rec *incident.Recorder, name string) (*berthv1.Incident, error) {
	list, err := rec.List(ctx, f.namespace, "")
	if err != nil {
		return nil, explainIncidents(err)
	}
	var found []berthv1.Incident
	var names []string
	for _, i := range list {
		names = append(names, i.Name)
		if i.Name == name {
			found = append(found, i)
		}
	}
	switch len(found) {
	case 0:
		sort.Strings(names)
		if len(names) == 0 {
			return nil, fmt.Errorf("no incident %q: there are no incidents", name)
		}
		return nil, fmt.Errorf("no incident %q; the incidents are %s", name, strings.Join(names, ", "))
	case 1:
		return &found[0], nil
	}
	return nil, fmt.Errorf("%d incidents are called %q, in different namespaces; choose one with --namespace", len(found), name)
}

// explainIncidents says what a missing Incident API means.
func explainIncidents(err error) error {
	if meta.IsNoMatchError(err) {
		return fmt.Errorf("%w: the cluster has no Incident API; the berth controller installs it ('berth bootstrap')", err)
	}
	return err
}

func newIncidentsCmd(app *App) *cobra.Command {
	var f incidentFlags
	var out output
	var appName string
	var all bool
	list := func(cmd *cobra.Command, args []string) error {
		rec, _, err := f.recorder(cmd.Context())
		if err != nil {
			return err
		}
		incs, err := rec.List(cmd.Context(), f.namespace, appName)
		if err != nil {
			return explainIncidents(err)
		}
		shown := []berthv1.Incident{}
		for _, i := range incs {
			if all || i.Status.State != berthv1.IncidentResolved {
				shown = append(shown, i)
			}
		}
		if out == outputJSON {
			return writeJSON(app.Out, shown)
		}
		if len(shown) == 0 {
			fmt.Fprintln(app.Out, "No open incidents.")
			return nil
		}
		tw := tabwriter.NewWriter(app.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tAPP\tCAUSE\tSTATE\tCOUNT\tLAST SEEN\tMESSAGE")
		for _, i := range shown {
			last := time.Time{}
			if i.Status.LastSeen != nil {
				last = i.Status.LastSeen.Time
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", i.Name, i.Spec.App, i.Spec.Cause, i.Status.State, i.Status.Count, ago(last), firstLine(i.Status.Message, 100))
		}
		return tw.Flush()
	}
	cmd := &cobra.Command{
		Use:   "incidents",
		Short: "List, show, acknowledge and resolve incidents",
		Long: `Incidents are what needs a person: a failed deploy, a crash-looping or
unschedulable workload. The berth controller opens one per cause (a repeated
failure counts on the same one, with a timeline) and resolves it when the app
is healthy again. Without a subcommand, lists the incidents that are not
resolved (--all includes them).`,
		Example: `  berth incidents
  berth incidents show web-crashlooping-deployment-web
  berth incidents ack web-crashlooping-deployment-web --note "looking at it"
  berth incidents resolve web-deployfailed`,
		Args: cobra.NoArgs,
		RunE: list,
	}
	f.add(cmd)
	addOutputFlag(cmd, &out)
	cmd.Flags().StringVar(&appName, "app", "", "only this app's incidents")
	cmd.Flags().BoolVar(&all, "all", false, "include resolved incidents")
	listCmd := &cobra.Command{Use: "list", Short: "List incidents (those not resolved; --all for every one)", Args: cobra.NoArgs, RunE: list}
	f.add(listCmd)
	addOutputFlag(listCmd, &out)
	listCmd.Flags().StringVar(&appName, "app", "", "only this app's incidents")
	listCmd.Flags().BoolVar(&all, "all", false, "include resolved incidents")
	cmd.AddCommand(listCmd, newIncidentShowCmd(app), newIncidentActCmd(app, "ack"), newIncidentActCmd(app, "resolve"))
	return cmd
}

func firstLine(s string, max int) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > max {
		s = s[:max-1] + "…"
	}
	return s
}

func newIncidentShowCmd(app *App) *cobra.Command {
	var f incidentFlags
	var out output
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show an incident with its timeline",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rec, _, err := f.recorder(cmd.Context())
			if err != nil {
				return err
			}
			inc, err := f.find(cmd.Context(), rec, args[0])
			if err != nil {
				return err
			}
			if out == outputJSON {
				return writeJSON(app.Out, inc)
			}
			printIncident(app.Out, inc)
			return nil
		},
	}
	f.add(cmd)
	addOutputFlag(cmd, &out)
	return cmd
}

func printIncident(w io.Writer, inc *berthv1.Incident) {
	fmt.Fprintf(w, "Incident %s (namespace %s)\n", inc.Name, inc.Namespace)
	fmt.Fprintf(w, "  app:     %s\n  cause:   %s\n", inc.Spec.App, inc.Spec.Cause)
	if inc.Spec.Object != "" {
		fmt.Fprintf(w, "  object:  %s\n", inc.Spec.Object)
	}
	fmt.Fprintf(w, "  state:   %s\n  count:   %d\n", inc.Status.State, inc.Status.Count)
	if inc.Status.FirstSeen != nil && inc.Status.LastSeen != nil {
		fmt.Fprintf(w, "  seen:    %s to %s\n", inc.Status.FirstSeen.UTC().Format(time.RFC3339), inc.Status.LastSeen.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(w, "  message: %s\n\nTIMELINE\n", inc.Status.Message)
	for _, e := range inc.Status.Timeline {
		by := ""
		if e.By != "" {
			by = " by " + e.By
		}
		fmt.Fprintf(w, "  %s  %s%s  %s\n", e.Time.UTC().Format(time.RFC3339), e.Type, by, e.Message)
	}
}

func newIncidentActCmd(app *App, verb string) *cobra.Command {
	var f incidentFlags
	var note string
	short := "Acknowledge an incident: someone is looking at it"
	if verb == "resolve" {
		short = "Resolve an incident by hand (it opens again if its cause is seen again)"
	}
	cmd := &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			rec, who, err := f.recorder(ctx)
			if err != nil {
				return err
			}
			inc, err := f.find(ctx, rec, args[0])
			if err != nil {
				return err
			}
			act := rec.Acknowledge
			if verb == "resolve" {
				act = rec.Resolve
			}
			err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
				var err error
				inc, err = act(ctx, inc.Namespace, inc.Name, who, note)
				return err
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(app.Out, "Incident %s is %s.\n", inc.Name, strings.ToLower(string(inc.Status.State)))
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&note, "note", "", "a note for the incident's timeline")
	return cmd
}
