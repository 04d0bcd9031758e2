using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ContinualMoE.Cli.Commands;
using ContinualMoE.Cli.Reporting;
using Spectre.Console;

namespace ContinualMoE.Cli.Sweeps;

/// <summary>Where one run of a sweep stands. Only complete runs enter the averages; the others are listed.</summary>
internal sealed record SweepRunStatus(int Index, SweepRun Run, string Status, string? Detail, JsonObject? Metrics)
{
    public const string Complete = "complete";
    public bool IsComplete => Status == Complete;

    /// <summary>metrics.json as the typed summary (complete runs only).</summary>
    public RunSummary Summary => Metrics is null
        ? throw new InvalidOperationException($"run {Run.Name} is not complete")
        : Metrics.Deserialize<RunSummary>(ReportJson.Indented)!;

    /// <summary>Every number of metrics.json that is not in a list, by its path (metrics' own fields without the
    /// "metrics." prefix: final_average_accuracy, cost.trainable_parameters, test_images_per_second, ...).</summary>
    public IReadOnlyList<(string Column, double Value)> Columns()
    {
        var columns = new List<(string, double)>();
        void Walk(JsonNode? node, string path)
        {
            switch (node)
            {
                case JsonObject o:
                    foreach (var (key, value) in o) Walk(value, path.Length == 0 ? key : $"{path}.{key}");
                    break;
                case JsonValue v when v.GetValueKind() == JsonValueKind.Number:
                    columns.Add((path.StartsWith("metrics.", StringComparison.Ordinal) ? path["metrics.".Length..] : path,
                        double.Parse(v.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture)));
                    break;
            }
        }
        Walk(Metrics, "");
        return columns;
    }

    public double[]? AverageAccuracyCurve => Metrics?["metrics"]?["average_accuracy_curve"] is JsonArray curve
        ? curve.Select(v => v!.GetValue<double>()).ToArray()
        : null;
}

/// <summary>
/// <c>continual-moe report SWEEP</c> (docs/sweeps.md): per dataset × task count, mean ± sample standard deviation over
/// seeds of every number in the runs' metrics.json, in Markdown, CSV and JSON, and three plots per group (average
/// accuracy after each task with a band over seeds; accuracy against trainable parameters; accuracy against test
/// images/s). Runs that are missing, running, interrupted or failed are listed by name and never averaged: every row
/// says how many of its runs are in it.
/// </summary>
internal static class SweepReport
{
    public const string FinalAccuracy = "final_average_accuracy";
    public const string TrainableParameters = "cost.trainable_parameters";
    public const string TestSpeed = "test_images_per_second";

    /// <summary>The status of every run, from its folder, its claim and attempts.jsonl.</summary>
    public static IReadOnlyList<SweepRunStatus> Statuses(SweepFolder sweep)
    {
        var lastAttempt = new Dictionary<string, SweepAttempt>();
        foreach (var attempt in sweep.Attempts()) lastAttempt[attempt.Run] = attempt;
        return sweep.Runs.Select((run, index) =>
        {
            var folder = sweep.RunFolder(run);
            if (sweep.IsComplete(run))
            {
                try
                {
                    return new SweepRunStatus(index, run, SweepRunStatus.Complete, null, JsonNode.Parse(File.ReadAllText(Path.Combine(folder, Reporting.RunFolder.MetricsFileName)))!.AsObject());
                }
                catch (Exception e) when (e is JsonException or InvalidOperationException)
                {
                    return new SweepRunStatus(index, run, "unreadable", $"metrics.json: {e.Message.Split('\n')[0]}", null);
                }
            }
            if (SweepClaim.IsHeld(sweep.ClaimFile(run))) return new SweepRunStatus(index, run, "running", null, null);
            lastAttempt.TryGetValue(run.Name, out var last);
            var checkpoint = Path.Combine(folder, RunSession.CheckpointFileName);
            var progress = File.Exists(checkpoint) ? TasksFinished(checkpoint) is int done ? $"{done} of {run.Config.Tasks} tasks finished" : "checkpoint unreadable" : null;
            if (last?.Event == "failed")
                return new SweepRunStatus(index, run, "failed", string.Join("; ", new[] { $"exit code {last.ExitCode}", last.Detail, progress, last.Executor }.OfType<string>()), null);
            if (progress is not null) return new SweepRunStatus(index, run, "interrupted", progress, null);
            return new SweepRunStatus(index, run, last is null ? "not started" : "interrupted", last is null ? null : "before its first task finished", null);
        }).ToList();
    }

    private static int? TasksFinished(string checkpoint)
    {
        try
        {
            Checkpoints.SafeTensorsFile.ReadMetadata(checkpoint).TryGetValue("finished_tasks", out var value);
            return int.TryParse(value, out var n) ? n : null;
        }
        catch (Exception) { return null; }
    }

    /// <summary>One row: the runs of one setting (all axes but seed) within a dataset × task-count group.</summary>
    public sealed record Row(string Dataset, int Tasks, JsonObject Axes, string Label, IReadOnlyList<SweepRunStatus> Runs)
    {
        public IReadOnlyList<SweepRunStatus> Complete => Runs.Where(r => r.IsComplete).ToList();

        public (double? Mean, double? Std, int N) Column(string column) =>
            Statistics(Complete.Select(r => r.Columns().Where(c => c.Column == column).Select(c => (double?)c.Value).FirstOrDefault()));

        /// <summary>Per step, mean and std of the average-accuracy curves of the complete runs (null std below two runs).</summary>
        public (double[] Mean, double[]? Std)? Curve()
        {
            var curves = Complete.Select(r => r.AverageAccuracyCurve).OfType<double[]>().ToList();
            if (curves.Count == 0) return null;
            var steps = curves.Min(c => c.Length);
            var stats = Enumerable.Range(0, steps).Select(t => Statistics(curves.Select(c => (double?)c[t]))).ToList();
            return (stats.Select(s => s.Mean!.Value).ToArray(), curves.Count < 2 ? null : stats.Select(s => s.Std!.Value).ToArray());
        }
    }

    /// <summary>Mean and sample standard deviation (n − 1) of the defined values; std is null below two values.</summary>
    public static (double? Mean, double? Std, int N) Statistics(IEnumerable<double?> values)
    {
        var list = values.OfType<double>().ToList();
        if (list.Count == 0) return (null, null, 0);
        var mean = list.Average();
        double? std = list.Count < 2 ? null : Math.Sqrt(list.Sum(v => (v - mean) * (v - mean)) / (list.Count - 1));
        return (mean, std, list.Count);
    }

    private static readonly HashSet<string> GroupKeys = ["seed", "dataset", "tasks"];

    public static IReadOnlyList<Row> Rows(SweepFolder sweep, IReadOnlyList<SweepRunStatus> statuses)
    {
        var variantKeys = sweep.AxisKeys.Where(k => !GroupKeys.Contains(k)).ToList();
        return statuses
            .GroupBy(s => (s.Run.Config.Dataset, s.Run.Config.Tasks, Key: string.Join('\u001f', variantKeys.Select(k => s.Run.Axes[k]?.ToJsonString() ?? "null"))))
            .Select(g =>
            {
                var axes = new JsonObject();
                foreach (var key in variantKeys) axes[key] = g.First().Run.Axes[key]?.DeepClone();
                var label = variantKeys.Count == 0 ? sweep.Name
                    : string.Join(", ", variantKeys.Select(k => k == "method" ? SweepSpec.ValueLabel(axes[k]) : $"{k}={SweepSpec.ValueLabel(axes[k])}"));
                return new Row(g.Key.Dataset, g.Key.Tasks, axes, label, g.ToList());
            }).ToList();
    }

    /// <summary>Writes report/ and prints the Markdown tables' overview; returns the report folder.</summary>
    public static string Write(SweepFolder sweep)
    {
        var statuses = Statuses(sweep);
        var rows = Rows(sweep, statuses);
        var folder = sweep.Subfolder("report");
        // Columns in first-seen order over every complete run, so a metric that only some methods report still shows.
        var columns = statuses.Where(s => s.IsComplete).SelectMany(s => s.Columns().Select(c => c.Column)).Distinct().ToList();
        var groups = rows.GroupBy(r => (r.Dataset, r.Tasks)).ToList();
        var variantKeys = sweep.AxisKeys.Where(k => !GroupKeys.Contains(k)).ToList();
        var notAveraged = statuses.Where(s => !s.IsComplete).ToList();

        var markdown = new StringBuilder($"# Sweep {sweep.Name}\n\n");
        markdown.AppendLine($"{statuses.Count(s => s.IsComplete)} of {statuses.Count} runs complete. Cells are mean ± sample standard deviation over the complete runs (seeds); " +
                            "the runs column says how many of the row's runs are in it.\n");
        var csv = new StringBuilder();
        csv.AppendLine(string.Join(',', new[] { "dataset", "tasks" }.Concat(variantKeys).Concat(["runs_complete", "runs_expected"])
            .Concat(columns.SelectMany(c => new[] { c + "_mean", c + "_std" })).Select(Csv)));
        var json = new JsonArray();
        foreach (var group in groups)
        {
            var slug = SweepSpec.SafeName($"{group.Key.Dataset}-tasks{group.Key.Tasks}");
            markdown.AppendLine($"## {group.Key.Dataset}, {group.Key.Tasks} tasks\n");
            markdown.AppendLine("| setting | runs | " + string.Join(" | ", columns) + " |");
            markdown.AppendLine("|---|---|" + string.Concat(columns.Select(_ => "---|")));
            var groupJson = new JsonArray();
            foreach (var row in group)
            {
                var complete = row.Complete.Count;
                var cells = columns.Select(row.Column).ToList();
                markdown.AppendLine($"| {row.Label} | {complete}/{row.Runs.Count} | " + string.Join(" | ", cells.Select(MeanStd)) + " |");
                csv.AppendLine(string.Join(',', new[] { row.Dataset, row.Tasks.ToString(CultureInfo.InvariantCulture) }
                    .Concat(variantKeys.Select(k => SweepSpec.ValueLabel(row.Axes[k])))
                    .Concat([complete.ToString(CultureInfo.InvariantCulture), row.Runs.Count.ToString(CultureInfo.InvariantCulture)])
                    .Concat(cells.SelectMany(c => new[] { Number(c.Mean), Number(c.Std) })).Select(Csv)));
                var columnsJson = new JsonObject();
                foreach (var (column, cell) in columns.Zip(cells))
                    columnsJson[column] = new JsonObject { ["mean"] = cell.Mean, ["std"] = cell.Std, ["n"] = cell.N };
                var curve = row.Curve();
                groupJson.Add(new JsonObject
                {
                    ["setting"] = row.Label,
                    ["axes"] = row.Axes.DeepClone(),
                    ["runs_complete"] = complete,
                    ["runs_expected"] = row.Runs.Count,
                    ["runs"] = new JsonArray(row.Runs.Select(r => (JsonNode?)new JsonObject { ["name"] = r.Run.Name, ["status"] = r.Status }).ToArray()),
                    ["columns"] = columnsJson,
                    ["average_accuracy_curve"] = curve is { } c ? new JsonObject
                    {
                        ["mean"] = new JsonArray(c.Mean.Select(v => (JsonNode?)v).ToArray()),
                        ["std"] = c.Std is null ? null : new JsonArray(c.Std.Select(v => (JsonNode?)v).ToArray()),
                    } : null,
                });
            }
            markdown.AppendLine();
            json.Add(new JsonObject { ["dataset"] = group.Key.Dataset, ["tasks"] = group.Key.Tasks, ["rows"] = groupJson });
            WritePlots(folder, slug, group.ToList(), $"{group.Key.Dataset}, {group.Key.Tasks} tasks", markdown);
        }

        if (GridReport.Applies(sweep))
        {
            GridReport.Write(sweep, statuses, folder);
            markdown.AppendLine($"## Shots × overlap\n\nThe sweep varies shots or overlap: per setting and cell, accuracy and cost in [{GridReport.MarkdownFileName}]({GridReport.MarkdownFileName}) " +
                                $"and {GridReport.CsvFileName}, sample-efficiency curves and heatmaps beside them.\n");
        }

        markdown.AppendLine("## Runs not in the averages\n");
        if (notAveraged.Count == 0) markdown.AppendLine("None: every run is complete.");
        else
        {
            markdown.AppendLine("| run | index | status | detail |\n|---|---|---|---|");
            foreach (var s in notAveraged) markdown.AppendLine($"| {s.Run.Name} | {s.Index} | {s.Status} | {s.Detail ?? ""} |");
        }
        var runsCsv = new StringBuilder("index,run,status,detail\n");
        foreach (var s in statuses) runsCsv.AppendLine(string.Join(',', new[] { s.Index.ToString(CultureInfo.InvariantCulture), s.Run.Name, s.Status, s.Detail ?? "" }.Select(Csv)));

        var report = new JsonObject
        {
            ["sweep"] = sweep.Name,
            ["runs_complete"] = statuses.Count(s => s.IsComplete),
            ["runs_expected"] = statuses.Count,
            ["groups"] = json,
            ["runs_not_averaged"] = new JsonArray(notAveraged.Select(s => (JsonNode?)new JsonObject
            {
                ["index"] = s.Index, ["run"] = s.Run.Name, ["status"] = s.Status, ["detail"] = s.Detail,
            }).ToArray()),
        };
        AtomicFile.WriteAllText(Path.Combine(folder, "summary.md"), markdown.ToString());
        AtomicFile.WriteAllText(Path.Combine(folder, "summary.csv"), csv.ToString());
        AtomicFile.WriteAllText(Path.Combine(folder, "runs.csv"), runsCsv.ToString());
        AtomicFile.WriteAllText(Path.Combine(folder, "summary.json"), report.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");

        PrintOverview(rows, notAveraged);
        AnsiConsole.MarkupLine($"Report: [bold]{Markup.Escape(folder)}[/] (summary.md, summary.csv, summary.json, runs.csv, plots" +
                               (GridReport.Applies(sweep) ? $", {GridReport.MarkdownFileName}, {GridReport.CsvFileName})" : ")"));
        return folder;
    }

    private static void WritePlots(string folder, string slug, IReadOnlyList<Row> rows, string title, StringBuilder markdown)
    {
        var curves = rows.Select(r => (r.Label, Curve: r.Curve())).Where(c => c.Curve is not null)
            .Select(c => (c.Label, c.Curve!.Value.Mean, c.Curve!.Value.Std)).ToList();
        if (curves.Count == 0) return;
        var written = new List<string>();
        var curvePlot = $"{slug}_average_accuracy.png";
        Plots.AverageAccuracyBands(curves, Path.Combine(folder, curvePlot), $"{title}: average accuracy after each task (mean ± std over seeds)");
        written.Add(curvePlot);
        foreach (var (column, xLabel, file) in new[]
                 {
                     (TrainableParameters, "trainable parameters", $"{slug}_accuracy_vs_parameters.png"),
                     (TestSpeed, "test images / s", $"{slug}_accuracy_vs_test_speed.png"),
                 })
        {
            var points = rows.Select(r => (r.Label, X: r.Column(column), Y: r.Column(FinalAccuracy)))
                .Where(p => p.X.Mean is not null && p.Y.Mean is not null)
                .Select(p => (p.Label, p.X.Mean!.Value, p.X.Std, p.Y.Mean!.Value, p.Y.Std)).ToList();
            if (points.Count == 0) continue;
            Plots.AccuracyAgainst(points, xLabel, Path.Combine(folder, file), $"{title}: final average accuracy against {xLabel}");
            written.Add(file);
        }
        markdown.AppendLine(string.Join("\n", written.Select(f => $"![{f}]({f})")) + "\n");
    }

    private static void PrintOverview(IReadOnlyList<Row> rows, IReadOnlyList<SweepRunStatus> notAveraged)
    {
        var table = new Table().Title("Sweep (mean ± std over seeds)");
        foreach (var column in new[] { "dataset", "tasks", "setting", "runs", "final avg acc (%)", "forgetting (pp)", "trainable params", "test img/s" }) table.AddColumn(column);
        foreach (var row in rows)
            table.AddRow(new[]
            {
                row.Dataset, row.Tasks.ToString(CultureInfo.InvariantCulture), row.Label, $"{row.Complete.Count}/{row.Runs.Count}",
                MeanStd(row.Column(FinalAccuracy)), MeanStd(row.Column("forgetting")), MeanStd(row.Column(TrainableParameters)), MeanStd(row.Column(TestSpeed)),
            }.Select(Markup.Escape).ToArray());
        AnsiConsole.Write(table);
        foreach (var s in notAveraged)
            AnsiConsole.MarkupLine($"[yellow]not averaged:[/] {Markup.Escape(s.Run.Name)} ({Markup.Escape(s.Status)}{Markup.Escape(s.Detail is null ? "" : ": " + s.Detail)})");
    }

    private static string MeanStd((double? Mean, double? Std, int N) cell) => cell.Mean is not double mean
        ? "–"
        : cell.Std is double std ? $"{Format(mean)} ± {Format(std)}" : Format(mean);

    private static string Format(double value) => value == Math.Floor(value) || Math.Abs(value) >= 1000
        ? value.ToString("N0", CultureInfo.InvariantCulture)
        : value.ToString("F2", CultureInfo.InvariantCulture);

    private static string Number(double? value) => value is double v ? v.ToString("R", CultureInfo.InvariantCulture) : "";

    private static string Csv(string text) => text.IndexOfAny([',', '"', '\n']) >= 0 ? "\"" + text.Replace("\"", "\"\"") + "\"" : text;
}
