package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/upgrades"
	"berth.dev/berth/internal/workspace"
)

// upgradesCommands are the commands of upgrades over the air (docs/upgrades.md).
func upgradesCommands(app *App) []*cobra.Command {
	return []*cobra.Command{newUpgradesCmd(app), newApproveCmd(app), newRejectCmd(app)}
}

// UpgradesView is what 'berth upgrades' shows.
type UpgradesView struct {
	// Source is "controller" when the controller's status is shown, else
	// "workspace": computed here, nothing proposed or applied automatically.
	Source     string                     `json:"source"`
	Workspace  string                     `json:"workspace,omitempty"`
	Available  []berthv1.AvailableUpgrade `json:"available"`
	Proposals  []berthv1.UpgradeProposal  `json:"proposals"`
	InFlight   []berthv1.UpgradeInFlight  `json:"inFlight"`
	Conditions []metav1.Condition         `json:"conditions,omitempty"`
	Problems   []string                   `json:"problems,omitempty"`
}

func newUpgradesCmd(app *App) *cobra.Command {
	var f wsFlags
	var out output
	cmd := &cobra.Command{
		Use:   "upgrades",
		Short: "List the versions available to your apps, the proposals waiting and the upgrades in flight",
		Long: `List, per app, the newest version its channel or version constraint allows when
it is newer than the installed one, with the policy that applies (auto, approve
or ignore, from berth.yaml's upgrades section and app.yaml's upgrade) and where
it stands: proposed (a branch berth/upgrade/APP/VERSION waits for 'berth
approve' or 'berth reject'), waiting (an auto upgrade, until the next
maintenance window: shown), applying, ignored, rejected or held (rolled back).

When a berth controller manages the workspace's cluster, this is its view
(the Workspace's status): proposals and upgrades in flight too. Otherwise berth
computes the list from the workspace's catalogs; nothing is proposed or applied
on its own, and 'berth upgrade APP' upgrades by hand.`,
		Example: `  berth upgrades
  berth upgrades -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			env, err := app.env(&f, nil)
			if err != nil {
				return err
			}
			view, err := upgradesView(ctx, env)
			if err != nil {
				return err
			}
			if out == outputJSON {
				return writeJSON(app.Out, view)
			}
			printUpgrades(app.Out, view)
			return nil
		},
	}
	f.add(cmd)
	addOutputFlag(cmd, &out)
	return cmd
}

// upgradesView reads the controller's view when one manages the workspace,
// and computes it from the workspace otherwise.
func upgradesView(ctx context.Context, env *lifecycle.Env) (*UpgradesView, error) {
	if c, err := env.Controller(ctx); err == nil && c != nil {
		v := &UpgradesView{Source: "controller", Workspace: c.Workspace.Namespace + "/" + c.Workspace.Name}
		if u := c.Workspace.Status.Upgrades; u != nil {
			v.Available, v.Proposals, v.InFlight, v.Conditions = u.Available, u.Proposals, u.InFlight, u.Conditions
		}
		return v, nil
	}
	v := &UpgradesView{Source: "workspace"}
	// Without a controller polling them, read the catalogs afresh.
	for _, r := range env.WS.Config.Catalogs {
		if err := env.Catalogs.Update(ctx, r.Name); err != nil {
			v.Problems = append(v.Problems, fmt.Sprintf("%v; its last copy is used", err))
		}
	}
	snap, err := workspace.Load(os.DirFS(env.WS.Root))
	if err != nil {
		return nil, err
	}
	records, err := upgrades.ReadRecords(os.DirFS(env.WS.Root))
	if err != nil {
		return nil, err
	}
	cands, problems := upgrades.Check(ctx, env, snap, records, time.Now())
	for _, p := range append(problems, errorsOf(snap.UnmatchedRules())...) {
		v.Problems = append(v.Problems, p.Error())
	}
	for _, c := range cands {
		a := berthv1.AvailableUpgrade{App: c.App, Package: c.Package, From: c.From, To: c.To, Channel: c.Channel,
			Policy: c.Policy.Policy.String(), Breaking: c.Breaking != "", State: c.State.String(), Message: c.Message}
		if !c.NextWindow.IsZero() {
			t := metav1.NewTime(c.NextWindow)
			a.NextWindow = &t
		}
		v.Available = append(v.Available, a)
	}
	return v, nil
}

func errorsOf(msgs []string) []error {
	out := make([]error, len(msgs))
	for i, m := range msgs {
		out[i] = fmt.Errorf("%s", m)
	}
	return out
}

func printUpgrades(w io.Writer, v *UpgradesView) {
	if v.Source == "controller" {
		fmt.Fprintf(w, "As the berth controller sees it (Workspace %s):\n", v.Workspace)
	}
	if len(v.Available) == 0 {
		fmt.Fprintln(w, "Every app is at the newest version its channel or constraint allows.")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "APP\tPACKAGE\tFROM\tTO\tCHANNEL\tPOLICY\tSTATE")
		for _, a := range v.Available {
			state := a.State
			if a.Breaking {
				state += " (breaking)"
			}
			if a.NextWindow != nil {
				state += ", at " + a.NextWindow.Local().Format("Mon 2 Jan 15:04 MST")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.App, a.Package, a.From, a.To, a.Channel, a.Policy, state)
		}
		_ = tw.Flush()
	}
	if len(v.Proposals) > 0 {
		fmt.Fprintln(w, "\nProposals ('berth approve APP' lands one, 'berth reject APP VERSION' drops it):")
		for _, p := range v.Proposals {
			fmt.Fprintf(w, "  %s %s -> %s on %s: %d created, %d changed, %d deleted\n", p.App, p.From, p.To, p.Branch, p.Plan.Created, p.Plan.Changed, p.Plan.Deleted)
			if p.Breaking {
				fmt.Fprintf(w, "    breaking: %s\n", p.BreakingReason)
			}
			for _, l := range strings.Split(p.ReleaseNotes, "\n") {
				if l != "" {
					fmt.Fprintf(w, "    %s\n", l)
				}
			}
		}
	}
	for _, f := range v.InFlight {
		fmt.Fprintf(w, "\nIn flight: %s %s -> %s (commit %.8s), healthy by %s or rollback %s\n", f.App, f.From, f.To, f.Commit, f.Deadline.Local().Format(time.RFC3339), f.Rollback)
	}
	for _, c := range v.Conditions {
		if c.Status != metav1.ConditionTrue {
			fmt.Fprintf(w, "\n%s: %s\n", c.Type, c.Message)
		}
	}
	for _, p := range v.Problems {
		fmt.Fprintf(w, "\nProblem: %s\n", p)
	}
	if v.Source == "workspace" && len(v.Available) > 0 {
		fmt.Fprintln(w, "\nNo berth controller manages this workspace: nothing is proposed or applied on its own; 'berth upgrade APP' upgrades by hand.")
	}
}

func newApproveCmd(app *App) *cobra.Command {
	var f wsFlags
	var df deployFlags
	var out output
	cmd := &cobra.Command{
		Use:   "approve APP [VERSION]",
		Short: "Land a proposed upgrade (or allow a rejected or rolled back version again), then deploy",
		Long: `Land the controller's proposal of APP (the branch berth/upgrade/APP/VERSION;
the newest when VERSION is not given) on the checked-out branch: a fast-forward
when the proposal is based on it, a merge commit otherwise. A version that was
rejected, or rolled back because it was not healthy, is allowed again (its hold
in upgrades.yaml is lifted by a commit), so the controller brings it again.
Then berth deploys, through the controller when one manages the cluster.`,
		Example: `  berth approve airflow
  berth approve airflow 2.10.4`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p := newProgress(app.Err)
			defer p.Close()
			env, err := app.env(&f, p)
			if err != nil {
				return err
			}
			opts := upgrades.ApproveOptions{App: args[0]}
			if len(args) == 2 {
				opts.Version = args[1]
			}
			_, branch, err := env.WS.Head(ctx)
			if err != nil {
				return err
			}
			opts.Remote = env.WS.Upstream(ctx, branch)
			if err := df.before(ctx, env); err != nil {
				return err
			}
			c := df.begin(ctx, env, opts.App)
			res, err := upgrades.Approve(ctx, env.WS, opts)
			if err != nil {
				if upgrades.IsNoProposal(err) {
					return fmt.Errorf("%w; 'berth upgrades' lists what is proposed", err)
				}
				return err
			}
			if _, err := df.afterChange(ctx, app, env, c, []string{opts.App}); err != nil {
				return err
			}
			if out == outputJSON {
				return writeJSON(app.Out, res)
			}
			if res.Branch != "" {
				fmt.Fprintf(app.Out, "Approved %s %s: %s landed (%s) at %.8s.\n", res.App, res.Version, res.Branch, res.Merge, res.Head)
			}
			if res.Released {
				fmt.Fprintf(app.Out, "%s %s is allowed again: the controller brings it at its next check.\n", res.App, res.Version)
			}
			return nil
		},
	}
	f.add(cmd)
	df.add(cmd)
	df.addAtomic(cmd)
	addOutputFlag(cmd, &out)
	return cmd
}

func newRejectCmd(app *App) *cobra.Command {
	var f wsFlags
	var reason string
	cmd := &cobra.Command{
		Use:   "reject APP VERSION",
		Short: "Record that a version of an app is not wanted: it is not proposed again",
		Long: `Record in upgrades.yaml, as a commit, that VERSION of APP is not wanted: the
controller drops its proposal (the branch) and does not propose or apply that
version again. A newer version is proposed as usual. 'berth approve APP VERSION'
allows it again.`,
		Example: `  berth reject airflow 2.10.4 --reason "waits for the provider fix"`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			env, err := app.env(&f, nil)
			if err != nil {
				return err
			}
			committed, err := upgrades.Reject(ctx, env.WS, args[0], args[1], reason, time.Now())
			if err != nil {
				return err
			}
			if !committed {
				fmt.Fprintf(app.Out, "%s %s was already rejected.\n", args[0], args[1])
				return nil
			}
			_, branch, err := env.WS.Head(ctx)
			if err == nil {
				if remote := env.WS.Upstream(ctx, branch); remote != "" {
					if err := env.WS.Push(ctx, remote, branch); err != nil {
						return fmt.Errorf("the rejection is committed but could not be pushed (push it with 'git push'): %w", err)
					}
				}
			}
			fmt.Fprintf(app.Out, "Rejected %s %s: it is not proposed again.\n", args[0], args[1])
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded with the rejection")
	return cmd
}
