using System.Globalization;
using System.Text;
using ContinualMoE.Cli.Commands;
using ContinualMoE.Cli.Reporting;
using Spectre.Console;

namespace ContinualMoE.Cli.Sweeps;

/// <summary>
/// The sample-efficiency report of a sweep that varies <c>shots</c> and/or <c>overlap</c> (issue 10 §3; written by
/// <c>continual-moe report</c>, <c>sweep</c> and <c>grid</c> into report/): per dataset × task count, per setting (the
/// method and every other axis but seed, shots and overlap) and per shots × overlap cell, mean and sample standard
/// deviation over seeds of the final average accuracy and forgetting, the scenario metrics, and the cost beside them
/// (trainable parameters after each task, backbone passes per test image, train and test images/s). Plots: final
/// accuracy against shots (one curve per setting and overlap) and one heatmap per setting over shots × overlap.
/// </summary>
internal static class GridReport
{
    public const string CsvFileName = "grid.csv";
    public const string MarkdownFileName = "grid.md";

    /// <summary>Whether the sweep is a grid: it varies the shots or the overlap.</summary>
    public static bool Applies(SweepFolder sweep) => sweep.AxisKeys.Contains("shots") || sweep.AxisKeys.Contains("overlap");

    /// <summary>One cell: the complete runs of one setting at one shots × overlap point.</summary>
    public sealed record Cell(string Setting, int? Shots, double Overlap, int RunsExpected, IReadOnlyList<RunSummary> Runs)
    {
        public (double? Mean, double? Std, int N) Of(Func<RunSummary, double?> value) => SweepReport.Statistics(Runs.Select(value));

        /// <summary>Per task, the mean over seeds of the trainable parameters after it (runs that recorded them).</summary>
        public double[]? ParametersAfterEachTask()
        {
            var lists = Runs.Select(r => r.TrainableParametersAfterTask).OfType<IReadOnlyList<long>>().ToList();
            if (lists.Count == 0) return null;
            var tasks = lists.Min(l => l.Count);
            return Enumerable.Range(0, tasks).Select(t => lists.Average(l => (double)l[t])).ToArray();
        }
    }

    /// <summary>The cells per dataset × task count, settings in sweep order, shots ascending ("all" last), overlap ascending.</summary>
    public static IReadOnlyList<((string Dataset, int Tasks) Group, IReadOnlyList<Cell> Cells)> Cells(SweepFolder sweep, IReadOnlyList<SweepRunStatus> statuses)
    {
        var settingKeys = sweep.AxisKeys.Where(k => k is not ("seed" or "dataset" or "tasks" or "shots" or "overlap")).ToList();
        string Setting(SweepRun run) => settingKeys.Count == 0
            ? run.Config.Method
            : string.Join(", ", settingKeys.Select(k => k == "method" ? SweepSpec.ValueLabel(run.Axes[k]) : $"{k}={SweepSpec.ValueLabel(run.Axes[k])}"));
        return statuses.GroupBy(s => (s.Run.Config.Dataset, s.Run.Config.Tasks)).Select(group =>
        {
            var cells = group.GroupBy(s => (Setting: Setting(s.Run), s.Run.Config.Shots, s.Run.Config.Overlap))
                .Select(c => new Cell(c.Key.Setting, c.Key.Shots, c.Key.Overlap, c.Count(), c.Where(s => s.IsComplete).Select(s => s.Summary).ToList()))
                .ToList();
            var settings = cells.Select(c => c.Setting).Distinct().ToList();
            var ordered = cells.OrderBy(c => settings.IndexOf(c.Setting)).ThenBy(c => c.Shots ?? int.MaxValue).ThenBy(c => c.Overlap).ToList();
            return (group.Key, (IReadOnlyList<Cell>)ordered);
        }).ToList();
    }

    private static readonly string[] Columns =
    [
        "dataset", "tasks", "setting", "shots", "overlap", "seeds", "final_average_accuracy_mean", "final_average_accuracy_std",
        "forgetting_mean", "forgetting_std", "overlapping_class_accuracy_mean", "other_class_accuracy_mean", "forward_transfer_mean",
        "trainable_parameters_mean", "trainable_parameters_after_each_task_mean", "backbone_passes_per_test_image",
        "train_images_per_second_mean", "test_images_per_second_mean",
    ];

    /// <summary>Writes grid.csv, grid.md and the plots into <paramref name="folder"/>; returns the Markdown.</summary>
    public static string Write(SweepFolder sweep, IReadOnlyList<SweepRunStatus> statuses, string folder)
    {
        var csv = new StringBuilder().AppendLine(string.Join(',', Columns));
        var markdown = new StringBuilder($"# Grid {sweep.Name}: shots × overlap\n\n")
            .AppendLine("Mean ± sample standard deviation over seeds (complete runs); speeds and parameters are means. " +
                        "Parameters after each task are separated by '/'.\n");
        foreach (var ((dataset, tasks), cells) in Cells(sweep, statuses))
        {
            markdown.AppendLine($"## {dataset}, {tasks} tasks\n")
                .AppendLine("| setting | shots | overlap | seeds | final avg acc (%) | forgetting (pp) | overlapping cls acc (%) | other cls acc (%) | fwd transfer (pp) | trainable params after each task | passes / test image | train img/s | test img/s |")
                .AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
            foreach (var cell in cells)
            {
                var accuracy = cell.Of(r => r.Metrics.FinalAverageAccuracy);
                var forgetting = cell.Of(r => r.Metrics.Forgetting);
                var overlapping = cell.Of(r => r.Scenario?.OverlappingClassAccuracy).Mean;
                var other = cell.Of(r => r.Scenario?.NonOverlappingClassAccuracy).Mean;
                var forward = cell.Of(r => r.Scenario?.ForwardTransfer?.Mean).Mean;
                var parameters = cell.Of(r => r.Cost.TrainableParameters).Mean;
                var perTask = cell.ParametersAfterEachTask();
                var passes = cell.Of(r => r.Cost.BackbonePassesPerTestImage).Mean;
                var train = cell.Of(r => r.TrainImagesPerSecond).Mean;
                var test = cell.Of(r => r.TestImagesPerSecond).Mean;
                var seeds = $"{cell.Runs.Count}/{cell.RunsExpected}";
                csv.AppendLine(string.Join(',', dataset, tasks.ToString(CultureInfo.InvariantCulture), Csv(cell.Setting), ShotsLabel(cell.Shots),
                    OverlapLabel(cell.Overlap), cell.Runs.Count.ToString(CultureInfo.InvariantCulture), Number(accuracy.Mean), Number(accuracy.Std),
                    Number(forgetting.Mean), Number(forgetting.Std), Number(overlapping), Number(other), Number(forward), Number(parameters),
                    perTask is null ? "" : string.Join(';', perTask.Select(p => Number(p))), Number(passes), Number(train), Number(test)));
                markdown.AppendLine($"| {cell.Setting} | {ShotsLabel(cell.Shots)} | {OverlapLabel(cell.Overlap)} | {seeds} | {MeanStd(accuracy)} | {MeanStd(forgetting)} | " +
                                    $"{F(overlapping)} | {F(other)} | {F(forward)} | {(perTask is null ? "–" : string.Join(" / ", perTask.Select(p => p.ToString("N0", CultureInfo.InvariantCulture))))} | " +
                                    $"{F(passes, "F0")} | {F(train, "F0")} | {F(test, "F0")} |");
            }
            markdown.AppendLine();
            markdown.AppendLine(string.Join("\n", WritePlots(folder, SweepSpec.SafeName($"{dataset}-tasks{tasks}"), $"{dataset}, {tasks} tasks", cells)
                .Select(f => $"![{f}]({f})")) + "\n");
        }
        AtomicFile.WriteAllText(Path.Combine(folder, CsvFileName), csv.ToString());
        AtomicFile.WriteAllText(Path.Combine(folder, MarkdownFileName), markdown.ToString());
        return markdown.ToString();
    }

    /// <summary>Sample-efficiency curves and one heatmap per setting; cells without complete runs are NaN (left blank).</summary>
    private static IEnumerable<string> WritePlots(string folder, string slug, string title, IReadOnlyList<Cell> cells)
    {
        if (cells.All(c => c.Runs.Count == 0)) yield break;
        var shots = cells.Select(c => c.Shots).Distinct().OrderBy(s => s ?? int.MaxValue).ToList();
        var overlaps = cells.Select(c => c.Overlap).Distinct().Order().ToList();
        var settings = cells.Select(c => c.Setting).Distinct().ToList();
        double Mean(string setting, int? shot, double rho) =>
            cells.FirstOrDefault(c => c.Setting == setting && c.Shots == shot && c.Overlap == rho)?.Of(r => r.Metrics.FinalAverageAccuracy).Mean ?? double.NaN;
        var shotLabels = shots.Select(ShotsLabel).ToArray();
        var curves = new Dictionary<string, double[]>();
        foreach (var setting in settings)
        foreach (var rho in overlaps)
            curves[overlaps.Count > 1 ? $"{setting}, overlap {OverlapLabel(rho)}" : setting] = shots.Select(s => Mean(setting, s, rho)).ToArray();
        var efficiency = $"{slug}_sample_efficiency.png";
        Plots.SampleEfficiency(curves, shotLabels, Path.Combine(folder, efficiency), $"{title}: final average accuracy against shots (mean over seeds)");
        yield return efficiency;
        // A setting without any complete run has no heatmap (an all-empty heatmap has no colour range).
        foreach (var setting in settings.Where(s => cells.Any(c => c.Setting == s && c.Runs.Count > 0)))
        {
            var values = new double[shots.Count, overlaps.Count];
            for (var r = 0; r < shots.Count; r++)
                for (var c = 0; c < overlaps.Count; c++) values[r, c] = Mean(setting, shots[r], overlaps[c]);
            var heatmap = $"{slug}_heatmap_{SweepSpec.SafeName(setting)}.png";
            Plots.GridHeatmap(values, shotLabels, overlaps.Select(OverlapLabel).ToArray(), Path.Combine(folder, heatmap),
                $"{setting}, {title}");
            yield return heatmap;
        }
    }

    /// <summary>The console table of the grid (final accuracy and cost per cell).</summary>
    public static void Print(SweepFolder sweep, IReadOnlyList<SweepRunStatus> statuses)
    {
        var table = new Table().Title("Grid (mean ± std over seeds)");
        foreach (var column in new[] { "dataset", "setting", "shots", "overlap", "seeds", "final avg acc (%)", "forgetting (pp)", "trainable params", "train img/s", "test img/s" })
            table.AddColumn(column);
        foreach (var ((dataset, _), cells) in Cells(sweep, statuses))
        foreach (var cell in cells)
            table.AddRow(new[]
            {
                dataset, cell.Setting, ShotsLabel(cell.Shots), OverlapLabel(cell.Overlap), $"{cell.Runs.Count}/{cell.RunsExpected}",
                MeanStd(cell.Of(r => r.Metrics.FinalAverageAccuracy)), MeanStd(cell.Of(r => r.Metrics.Forgetting)),
                F(cell.Of(r => r.Cost.TrainableParameters).Mean, "N0"), F(cell.Of(r => r.TrainImagesPerSecond).Mean, "F0"), F(cell.Of(r => r.TestImagesPerSecond).Mean, "F0"),
            }.Select(Markup.Escape).ToArray());
        AnsiConsole.Write(table);
    }

    private static string ShotsLabel(int? shots) => shots?.ToString(CultureInfo.InvariantCulture) ?? "all";
    private static string OverlapLabel(double rho) => rho.ToString(CultureInfo.InvariantCulture);
    private static string Number(double? value) => value is double v ? v.ToString("R", CultureInfo.InvariantCulture) : "";
    private static string F(double? value, string format = "F2") => value is double v ? v.ToString(format, CultureInfo.InvariantCulture) : "–";
    private static string MeanStd((double? Mean, double? Std, int N) cell) =>
        cell.Mean is not double mean ? "–" : cell.Std is double std ? $"{F(mean)} ± {F(std)}" : F(mean);
    private static string Csv(string text) => text.IndexOfAny([',', '"', '\n']) >= 0 ? "\"" + text.Replace("\"", "\"\"") + "\"" : text;
}
