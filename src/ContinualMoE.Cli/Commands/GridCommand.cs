using System.CommandLine;
using System.Globalization;
using System.Text;
using ContinualMoE.Cli.Reporting;
using System.Text.Json.Nodes;
using ContinualMoE.Cli.Sweeps;
using ContinualMoE.Scenarios;
using Spectre.Console;

namespace ContinualMoE.Cli.Commands;

/// <summary>
/// <c>continual-moe grid</c>: a sweep (docs/sweeps.md) over methods x shots x overlap x seeds on one scenario, given on
/// the command line instead of in a spec file (issue 10, docs/scenarios.md). Every cell is an overlap-scenario run
/// (rho = 0 is the class-incremental split) in the sweep folder's runs/; the sweep's report/ has mean ± std of every
/// metric; the grid adds grid.csv (its columns), a sample-efficiency plot (final average accuracy against shots, one
/// curve per method and overlap) and one heatmap per method over shots x overlap. Running it again on the same
/// --output resumes it.
/// </summary>
internal static class GridCommand
{
    public static Command Create()
    {
        var runOptions = new RunOptions();
        var methods = new Option<string[]>("--methods") { Description = "methods (comma or space separated)", Required = true, AllowMultipleArgumentsPerToken = true };
        var shots = new Option<string[]>("--shots-grid") { Description = "shots per class per task, e.g. 1,5,10,all", Required = true, AllowMultipleArgumentsPerToken = true };
        var overlaps = new Option<string[]>("--overlap-grid") { Description = "overlap fractions rho, e.g. 0,0.25,0.5", AllowMultipleArgumentsPerToken = true };
        var seeds = new Option<string[]>("--seeds") { Description = "seeds (default: the run's seed)", AllowMultipleArgumentsPerToken = true };
        var output = new Option<string?>("--output", "-o") { Description = "grid (sweep) folder (default: runs/grid-<dataset>-<time>); the same folder again resumes" };
        var parallel = new Option<int>("--parallel") { Description = "runs at once (cores are divided between them)", DefaultValueFactory = _ => 1 };
        var command = new Command("grid", "run methods over a grid of shots x overlap and seeds (a sweep); tabulate mean and std, plot sample efficiency and heatmaps");
        runOptions.AddTo(command);
        foreach (var option in new Option[] { methods, shots, overlaps, seeds, output, parallel }) command.Options.Add(option);
        command.SetAction((parse, cancellation) =>
        {
            var baseConfig = runOptions.Resolve(parse) with { Scenario = ScenarioKinds.Overlap };
            var names = Split(parse.GetValue(methods)).ToList();
            var shotValues = Split(parse.GetValue(shots)).Select(ParseShots).ToList();
            var overlapValues = Split(parse.GetValue(overlaps)).Select(v => ParseNumber(v, "--overlap-grid")).DefaultIfEmpty(0).ToList();
            var seedValues = Split(parse.GetValue(seeds)).Select(v => (int)ParseNumber(v, "--seeds")).DefaultIfEmpty(baseConfig.Seed).ToList();
            if (parse.GetValue(parallel) < 1) throw new ContinualMoEException("--parallel must be at least 1");
            var spec = new SweepSpec($"grid-{SweepSpec.SafeName(baseConfig.Dataset)}", JsonNode.Parse(baseConfig.ToJson()), [],
                [
                    ("method", names.Select(n => (JsonNode?)JsonValue.Create(n)).ToList()),
                    ("shots", shotValues.Select(s => s is int n ? (JsonNode?)JsonValue.Create(n) : null).ToList()),
                    ("overlap", overlapValues.Select(o => (JsonNode?)JsonValue.Create(o)).ToList()),
                    ("seed", seedValues.Select(s => (JsonNode?)JsonValue.Create(s)).ToList()),
                ], [], parse.GetValue(parallel));
            var sweep = SweepFolder.Prepare(parse.GetValue(output) ?? Path.Combine("runs", $"grid-{baseConfig.Dataset}-{DateTime.Now:yyyyMMdd-HHmmss}"), spec, "grid command line");
            var code = SweepCommand.RunLocally(sweep, spec.Parallel, threads: null, cancellation);
            if (code == 130) return Task.FromResult(code);
            Write(sweep, names, shotValues, overlapValues);
            return Task.FromResult(code);
        });
        return command;
    }

    private static void Write(SweepFolder sweep, IReadOnlyList<string> methods, IReadOnlyList<int?> shots, IReadOnlyList<double> overlaps)
    {
        // Only complete runs: the sweep's report lists the others.
        var complete = SweepReport.Statuses(sweep).Where(s => s.IsComplete)
            .Select(s => (Config: s.Run.Config, Summary: s.Summary)).ToList();
        var columns = new[] { "method", "shots", "overlap", "seeds", "final avg acc mean (%)", "final avg acc std", "forgetting mean (pp)",
            "forgetting std", "overlapping cls acc mean (%)", "other cls acc mean (%)", "fwd transfer mean (pp)" };
        var csv = new StringBuilder().AppendLine(string.Join(',', columns.Select(c => c.Replace(",", ""))));
        var table = new Table().Title("Grid (mean and sample standard deviation over seeds)");
        foreach (var c in columns) table.AddColumn(c);
        var meanAccuracy = new Dictionary<(string, int?, double), double>();
        foreach (var method in methods)
        foreach (var shot in shots)
        foreach (var rho in overlaps)
        {
            var runs = complete.Where(x => x.Config.Method == method && x.Config.Shots == shot && x.Config.Overlap == rho).Select(x => x.Summary).ToList();
            var accuracy = Statistics(runs.Select(s => (double?)s.Metrics.FinalAverageAccuracy));
            var forgetting = Statistics(runs.Select(s => s.Metrics.Forgetting));
            meanAccuracy[(method, shot, rho)] = accuracy.Mean ?? double.NaN;
            var row = new[]
            {
                method, shot?.ToString(CultureInfo.InvariantCulture) ?? "all", rho.ToString(CultureInfo.InvariantCulture), runs.Count.ToString(CultureInfo.InvariantCulture),
                F(accuracy.Mean), F(accuracy.Std), F(forgetting.Mean), F(forgetting.Std),
                F(Statistics(runs.Select(s => s.Scenario?.OverlappingClassAccuracy)).Mean),
                F(Statistics(runs.Select(s => s.Scenario?.NonOverlappingClassAccuracy)).Mean),
                F(Statistics(runs.Select(s => s.Scenario?.ForwardTransfer?.Mean)).Mean),
            };
            csv.AppendLine(string.Join(',', row));
            table.AddRow(row.Select(Markup.Escape).ToArray());
        }
        AtomicFile.WriteAllText(Path.Combine(sweep.Path, "grid.csv"), csv.ToString());

        var shotLabels = shots.Select(s => s?.ToString(CultureInfo.InvariantCulture) ?? "all").ToArray();
        var curves = new Dictionary<string, double[]>();
        foreach (var method in methods)
        foreach (var rho in overlaps)
            curves[overlaps.Count > 1 ? $"{method}, overlap {rho.ToString(CultureInfo.InvariantCulture)}" : method] =
                shots.Select(s => meanAccuracy[(method, s, rho)]).ToArray();
        Plots.SampleEfficiency(curves, shotLabels, Path.Combine(sweep.Path, "sample_efficiency.png"));
        foreach (var method in methods)
        {
            var values = new double[shots.Count, overlaps.Count];
            for (var r = 0; r < shots.Count; r++)
                for (var c = 0; c < overlaps.Count; c++) values[r, c] = meanAccuracy[(method, shots[r], overlaps[c])];
            Plots.GridHeatmap(values, shotLabels, overlaps.Select(o => o.ToString(CultureInfo.InvariantCulture)).ToArray(),
                Path.Combine(sweep.Path, $"heatmap_{method}.png"), $"{method}: final average accuracy (%)");
        }
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine($"Grid: [bold]{Markup.Escape(sweep.Path)}[/]");
    }

    private static (double? Mean, double? Std) Statistics(IEnumerable<double?> values)
    {
        var (mean, std, _) = SweepReport.Statistics(values);
        return (mean, std);
    }

    private static string F(double? v) => v is double d ? d.ToString("F2", CultureInfo.InvariantCulture) : "";

    private static IEnumerable<string> Split(string[]? values) =>
        (values ?? []).SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    private static int? ParseShots(string value) => value.Equals("all", StringComparison.OrdinalIgnoreCase)
        ? null
        : int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n
        : throw new ContinualMoEException($"--shots-grid: '{value}' is not a number of shots or 'all'");

    private static double ParseNumber(string value, string option) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v
            : throw new ContinualMoEException($"{option}: '{value}' is not a number");
}
