package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// writeResults writes results.md and results.json to cfg.out.
func writeResults(cfg *config, results []*result) error {
	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfg.out, "results.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(cfg.out, "results.md"), []byte(markdown(cfg, results)), 0o644)
}

// markdown is the results as a table, one column per host count.
func markdown(cfg *config, results []*result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# bench-scale %s\n\n", time.Now().Format("2006-01-02 15:04"))
	fmt.Fprintf(&b, "Simulated delays: pull %s, start %s, health %s; maxParallel 25%%; idle window %s.\n", cfg.pull, cfg.start, cfg.health, cfg.idle)
	if len(cfg.managerFlagsDetected)+len(cfg.managerArgs) > 0 {
		fmt.Fprintf(&b, "Manager flags: `%s`.\n", strings.Join(append(append([]string{}, cfg.managerFlagsDetected...), cfg.managerArgs...), " "))
	} else {
		b.WriteString("Manager flags: none beyond the defaults (no worker or dial flags in this build).\n")
	}
	b.WriteString("\n| | " + cols(results, func(r *result) string { return fmt.Sprintf("%d hosts", r.Hosts) }) + " |\n")
	b.WriteString("|---|" + strings.Repeat("---:|", len(results)) + "\n")
	row := func(name string, f func(r *result) string) {
		b.WriteString("| " + name + " | " + cols(results, f) + " |\n")
	}
	secs := func(v float64) string {
		if v == 0 {
			return "–"
		}
		return fmt.Sprintf("%.1f s", v)
	}
	row("Servers Ready", func(r *result) string { return secs(r.ServersReady) })
	row("first deploy", func(r *result) string { return secs(r.FirstDeploy) })
	row("image change", func(r *result) string { return secs(r.ImageChange) })
	row("floor: first deploy", func(r *result) string { return secs(r.FloorFirstDeploy) })
	row("floor: image change", func(r *result) string { return secs(r.FloorImageChange) })
	row("ratio controller/floor (deploy, change)", func(r *result) string {
		if r.RatioImageChange == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f, %.2f", r.RatioFirstDeploy, r.RatioImageChange)
	})
	row("floor: SSH connect, all hosts", func(r *result) string { return fmt.Sprintf("%.2f s", r.FloorConnect) })
	row("controller peak RSS", func(r *result) string { return fmt.Sprintf("%.0f MiB", float64(r.PeakRSS)/(1<<20)) })
	row("controller CPU (servers, deploy, change, idle)", func(r *result) string {
		return fmt.Sprintf("%.1f s (%.1f, %.1f, %.1f, %.1f)", r.CPU, r.CPUByPhase["servers"], r.CPUByPhase["first deploy"], r.CPUByPhase["image change"], r.CPUByPhase["idle"])
	})
	row("apiserver requests (servers, deploy, change)", func(r *result) string {
		return fmt.Sprintf("%d, %d, %d", r.APIRequests["servers"], r.APIRequests["first deploy"], r.APIRequests["image change"])
	})
	row("apiserver requests / min, idle (without manager)", func(r *result) string {
		return fmt.Sprintf("%.1f (%.1f)", r.IdleAPIPerMin, r.BaseAPIPerMin)
	})
	row("simulator delays while Servers come up", func(r *result) string { return r.ServerDelays })
	row("SSH connections open (established)", func(r *result) string { return fmt.Sprintf("%d (%d)", r.SSHOpen, r.SSHAccepted) })
	row("host calls / host / min, idle", func(r *result) string { return fmt.Sprintf("%.2f", r.IdlePerHostMin) })
	row("controller CPU / min, idle", func(r *result) string { return fmt.Sprintf("%.2f s", r.IdleCPUPerMin) })
	row("Deployment status size", func(r *result) string { return fmt.Sprintf("%d B", r.StatusBytes) })
	row("largest Server status", func(r *result) string { return fmt.Sprintf("%d B", r.ServerStatusMax) })
	row("unknown calls, \"too large\", ERROR lines", func(r *result) string {
		return fmt.Sprintf("%d, %d, %d", len(r.Unknown), r.TooLarge, r.ErrorLines)
	})
	row("load average before → after", func(r *result) string { return r.LoadBefore + " → " + r.LoadAfter })
	for _, r := range results {
		if r.Error != "" {
			fmt.Fprintf(&b, "\n**%d hosts failed:** %s\n", r.Hosts, r.Error)
		}
	}
	b.WriteString("\nSimulator calls by phase, most first:\n\n")
	for _, r := range results {
		for _, ph := range []string{"servers", "first deploy", "image change", "idle"} {
			if c := r.Calls[ph]; len(c) > 0 {
				fmt.Fprintf(&b, "- %d hosts, %s (%d): %s\n", r.Hosts, ph, sum(c), strings.Join(topCalls(c, 8), ", "))
			}
		}
	}
	return b.String()
}

func cols(results []*result, f func(r *result) string) string {
	var out []string
	for _, r := range results {
		out = append(out, f(r))
	}
	return strings.Join(out, " | ")
}

// writePlot draws convergence times and peak RSS against host count (log scale) as an SVG
// of two panels.
func writePlot(path string, results []*result) error {
	var ok []*result
	for _, r := range results {
		if r.Error == "" && r.ImageChange > 0 {
			ok = append(ok, r)
		}
	}
	if len(ok) == 0 {
		return fmt.Errorf("no complete run to plot")
	}
	const w, h = 920, 360
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	times := []series{
		{"first deploy", "#1f77b4", pick(ok, func(r *result) float64 { return r.FirstDeploy })},
		{"image change", "#d62728", pick(ok, func(r *result) float64 { return r.ImageChange })},
		{"floor: image change", "#7f7f7f", pick(ok, func(r *result) float64 { return r.FloorImageChange })},
	}
	panel(&b, 60, 30, 360, 260, "convergence time (s)", ok, times)
	rss := []series{{"controller peak RSS", "#2ca02c", pick(ok, func(r *result) float64 { return float64(r.PeakRSS) / (1 << 20) })}}
	panel(&b, 530, 30, 360, 260, "controller peak RSS (MiB)", ok, rss)
	b.WriteString("</svg>\n")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

type series struct {
	name, color string
	y           []float64
}

func pick(rs []*result, f func(*result) float64) []float64 {
	var out []float64
	for _, r := range rs {
		out = append(out, f(r))
	}
	return out
}

// panel draws one chart at (x0, y0) of size pw×ph: hosts on a log x axis, y from 0.
func panel(b *strings.Builder, x0, y0, pw, ph float64, title string, rs []*result, ss []series) {
	lo, hi := math.Log10(float64(rs[0].Hosts)), math.Log10(float64(rs[len(rs)-1].Hosts))
	lo, hi = math.Floor(lo), math.Ceil(hi)
	if hi == lo {
		hi = lo + 1
	}
	ymax := 0.0
	for _, s := range ss {
		for _, v := range s.y {
			ymax = math.Max(ymax, v)
		}
	}
	ymax = niceCeil(ymax)
	px := func(n int) float64 { return x0 + (math.Log10(float64(n))-lo)/(hi-lo)*pw }
	py := func(v float64) float64 { return y0 + ph - v/ymax*ph }
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" text-anchor="middle" font-weight="bold">%s</text>`+"\n", x0+pw/2, y0-10, title)
	fmt.Fprintf(b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#333"/>`+"\n", x0, y0, pw, ph)
	for e := lo; e <= hi; e++ {
		x := x0 + (e-lo)/(hi-lo)*pw
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#ddd"/>`, x, y0, x, y0+ph)
		fmt.Fprintf(b, `<text x="%.1f" y="%.0f" text-anchor="middle">%.0f</text>`+"\n", x, y0+ph+16, math.Pow(10, e))
	}
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" text-anchor="middle">hosts (log scale)</text>`+"\n", x0+pw/2, y0+ph+34)
	for i := 0; i <= 4; i++ {
		v := ymax * float64(i) / 4
		fmt.Fprintf(b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#eee"/>`, x0, py(v), x0+pw, py(v))
		fmt.Fprintf(b, `<text x="%.0f" y="%.1f" text-anchor="end">%g</text>`+"\n", x0-6, py(v)+4, v)
	}
	for si, s := range ss {
		var pts []string
		for i, v := range s.y {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(rs[i].Hosts), py(v)))
		}
		fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), s.color)
		for i, v := range s.y {
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%s, %d hosts: %.1f</title></circle>`+"\n", px(rs[i].Hosts), py(v), s.color, s.name, rs[i].Hosts, v)
		}
		ly := y0 + 14 + float64(si)*16
		fmt.Fprintf(b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="%s" stroke-width="2"/>`, x0+10, ly-4, x0+28, ly-4, s.color)
		fmt.Fprintf(b, `<text x="%.0f" y="%.0f">%s</text>`+"\n", x0+34, ly, s.name)
	}
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}
