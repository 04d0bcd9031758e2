using System.CommandLine;
using System.Globalization;
using System.Text;
using ContinualMoE.Cli.Reporting;
using ContinualMoE.Scenarios;
using Spectre.Console;

namespace ContinualMoE.Cli.Commands;

/// <summary>
/// <c>continual-moe grid</c>: the compare command over a grid of shots x overlap for several methods and seeds
/// (issue 10, docs/scenarios.md). Every cell is an overlap-scenario run (rho = 0 is the class-incremental split) in its
/// own subfolder; then grid.csv (mean and sample standard deviation over seeds), a sample-efficiency plot (final
/// average accuracy against shots, one curve per method and overlap) and one heatmap per method over shots x overlap.
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
        var output = new Option<string?>("--output", "-o") { Description = "grid folder (default: runs/grid-<dataset>-<time>)" };
        var force = new Option<bool>("--force") { Description = "replace earlier results in the output folder" };
        var command = new Command("grid", "run methods over a grid of shots x overlap and seeds; tabulate mean and std, plot sample efficiency and heatmaps");
        runOptions.AddTo(command);
        foreach (var option in new Option[] { methods, shots, overlaps, seeds, output, force }) command.Options.Add(option);
        command.SetAction((parse, cancellation) =>
        {
            var baseConfig = runOptions.Resolve(parse);
            var names = Split(parse.GetValue(methods)).ToList();
            var shotValues = Split(parse.GetValue(shots)).Select(ParseShots).ToList();
            var overlapValues = Split(parse.GetValue(overlaps)).Select(v => ParseNumber(v, "--overlap-grid")).DefaultIfEmpty(0).ToList();
            var seedValues = Split(parse.GetValue(seeds)).Select(v => (int)ParseNumber(v, "--seeds")).DefaultIfEmpty(baseConfig.Seed).ToList();
            var cells = (from method in names
                         from shot in shotValues
                         from rho in overlapValues
                         from seed in seedValues
                         select new Cell(method, shot, rho, seed)).ToList();
            var configs = cells.Select(c => baseConfig with { Method = c.Method, Scenario = ScenarioKinds.Overlap, Shots = c.Shots, Overlap = c.Overlap, Seed = c.Seed }).ToList();
            foreach (var config in configs) RunSession.Validate(config);   // every bad setting before the first run
            var folder = RunFolder.Create(parse.GetValue(output) ?? Path.Combine("runs", $"grid-{baseConfig.Dataset}-{DateTime.Now:yyyyMMdd-HHmmss}"), parse.GetValue(force));
            var (code, summaries) = CompareCommand.RunAll(folder, cells.Select((c, i) => (c.Title, c.Folder, configs[i])).ToList(), parse.GetValue(force), cancellation);
            if (code != 0) return Task.FromResult(code);
            Write(folder, cells, summaries, names, shotValues, overlapValues);
            return Task.FromResult(0);
        });
        return command;
    }

    private sealed record Cell(string Method, int? Shots, double Overlap, int Seed)
    {
        public string ShotsText => Shots?.ToString(CultureInfo.InvariantCulture) ?? "all";
        public string OverlapText => Overlap.ToString(CultureInfo.InvariantCulture);
        public string Title => $"{Method}, shots {ShotsText}, overlap {OverlapText}, seed {Seed}";
        public string Folder => $"{Method}-shots{ShotsText}-overlap{OverlapText}-seed{Seed}";
    }

    private static void Write(RunFolder folder, IReadOnlyList<Cell> cells, IReadOnlyList<RunSummary> summaries,
        IReadOnlyList<string> methods, IReadOnlyList<int?> shots, IReadOnlyList<double> overlaps)
    {
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
            var runs = cells.Select((c, i) => (c, s: summaries[i])).Where(x => x.c.Method == method && x.c.Shots == shot && x.c.Overlap == rho).Select(x => x.s).ToList();
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
        AtomicFile.WriteAllText(folder.ResultPath("grid.csv"), csv.ToString());

        var shotLabels = shots.Select(s => s?.ToString(CultureInfo.InvariantCulture) ?? "all").ToArray();
        var curves = new Dictionary<string, double[]>();
        foreach (var method in methods)
        foreach (var rho in overlaps)
            curves[overlaps.Count > 1 ? $"{method}, overlap {rho.ToString(CultureInfo.InvariantCulture)}" : method] =
                shots.Select(s => meanAccuracy[(method, s, rho)]).ToArray();
        Plots.SampleEfficiency(curves, shotLabels, folder.ResultPath("sample_efficiency.png"));
        foreach (var method in methods)
        {
            var values = new double[shots.Count, overlaps.Count];
            for (var r = 0; r < shots.Count; r++)
                for (var c = 0; c < overlaps.Count; c++) values[r, c] = meanAccuracy[(method, shots[r], overlaps[c])];
            Plots.GridHeatmap(values, shotLabels, overlaps.Select(o => o.ToString(CultureInfo.InvariantCulture)).ToArray(),
                folder.ResultPath($"heatmap_{method}.png"), $"{method}: final average accuracy (%)");
        }
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine($"Grid: [bold]{Markup.Escape(folder.Path)}[/]");
    }

    /// <summary>Mean and sample standard deviation (n − 1) of the defined values; the deviation is null for fewer than two.</summary>
    internal static (double? Mean, double? Std) Statistics(IEnumerable<double?> values)
    {
        var list = values.OfType<double>().ToList();
        if (list.Count == 0) return (null, null);
        var mean = list.Average();
        double? std = list.Count < 2 ? null : Math.Sqrt(list.Sum(v => (v - mean) * (v - mean)) / (list.Count - 1));
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
