using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using ContinualMoE.Cli.Reporting;
using ContinualMoE.Experiments;
using ContinualMoE.Methods;
using Spectre.Console;

namespace ContinualMoE.Cli.Commands;

/// <summary>
/// <c>continual-moe compare</c>: the same run (data, backbone, seed, epochs) for several methods, one after another,
/// each in its own subfolder; then one table, comparison.csv and one average-accuracy plot with a curve per method.
/// </summary>
internal static class CompareCommand
{
    public static Command Create()
    {
        var runOptions = new RunOptions();
        var methods = new Option<string[]>("--methods") { Description = "methods to compare (comma or space separated)", Required = true, AllowMultipleArgumentsPerToken = true };
        var output = new Option<string?>("--output", "-o") { Description = "comparison folder (default: runs/compare-<dataset>-<time>)" };
        var force = new Option<bool>("--force") { Description = "replace earlier results in the output folder" };
        var command = new Command("compare", "run several methods on the same scenario and tabulate accuracy, forgetting, cost and speed");
        runOptions.AddTo(command);
        command.Options.Add(methods);
        command.Options.Add(output);
        command.Options.Add(force);
        command.SetAction((parse, cancellation) =>
        {
            var names = parse.GetValue(methods)!.SelectMany(m => m.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToList();
            var baseConfig = runOptions.Resolve(parse);
            foreach (var name in names) RunSession.Validate(baseConfig with { Method = name });   // every typo before the first run
            var folder = RunFolder.Create(parse.GetValue(output) ?? Path.Combine("runs", $"compare-{baseConfig.Dataset}-{DateTime.Now:yyyyMMdd-HHmmss}"), parse.GetValue(force));
            // A method named again (a soak run, tools/soak.sh) runs again in its own subfolder: smope, smope-2, ...
            var runs = names.Select((name, i) => names.Take(i).Count(n => n == name) is var before and > 0
                ? ($"{name} (run {before + 1})", $"{name}-{before + 1}", baseConfig with { Method = name })
                : (name, name, baseConfig with { Method = name })).ToList();
            var (code, summaries) = RunAll(folder, runs, parse.GetValue(force), cancellation);
            if (code != 0) return Task.FromResult(code);
            Write(folder, summaries);
            return Task.FromResult(0);
        });
        return command;
    }

    /// <summary>Runs each config in its own subfolder of <paramref name="folder"/>, one after another, and reads back
    /// each run's metrics.json; stops at the first run that does not finish (its exit code).</summary>
    public static (int Code, IReadOnlyList<RunSummary> Summaries) RunAll(RunFolder folder,
        IReadOnlyList<(string Title, string Subfolder, RunConfig Config)> runs, bool force, CancellationToken cancellation)
    {
        var summaries = new List<RunSummary>();
        // Methods whose task-alone runs are the same learner (seq-lora, ewc-lora, o-lora) share their forward-transfer reference.
        var references = new TaskAloneReferences();
        foreach (var (title, subfolder, config) in runs)
        {
            AnsiConsole.Write(new Rule(Markup.Escape(title)));
            var runFolder = Path.Combine(folder.Path, subfolder);
            var code = RunSession.Start(config, runFolder, force, cancellation, references: references);
            if (code != 0) return (code, summaries);
            summaries.Add(JsonSerializer.Deserialize<RunSummary>(File.ReadAllText(Path.Combine(runFolder, RunFolder.MetricsFileName)), ReportJson.Indented)!);
        }
        return (0, summaries);
    }

    private static void Write(RunFolder folder, IReadOnlyList<RunSummary> summaries)
    {
        var columns = new[] { "method", "final avg acc (%)", "cumulative avg acc (%)", "forgetting (pp)", "task identity (%)", "trainable params",
            "params added / task", "passes / test image", "train img/s", "test img/s", "wall s" };
        static string F(double? v, string format = "F2") => v is double d ? d.ToString(format, CultureInfo.InvariantCulture) : "";
        var rows = summaries.Select(s => new[]
        {
            s.Method, F(s.Metrics.FinalAverageAccuracy), F(s.Metrics.CumulativeAverageAccuracy), F(s.Metrics.Forgetting),
            F(s.Metrics.TaskIdentity?.FinalAverage), s.Cost.TrainableParameters.ToString(CultureInfo.InvariantCulture),
            s.Cost.ParametersAddedPerTask.ToString(CultureInfo.InvariantCulture), s.Cost.BackbonePassesPerTestImage.ToString(CultureInfo.InvariantCulture),
            F(s.TrainImagesPerSecond, "F0"), F(s.TestImagesPerSecond, "F0"), F(s.WallSeconds, "F0"),
        }).ToList();
        // Overlapping scenarios and forward transfer add their columns (docs/metrics.md).
        if (summaries.Any(s => s.Scenario is { OverlappingClasses: > 0 } || s.Scenario?.ForwardTransfer is not null))
        {
            columns = [.. columns, "overlapping cls acc (%)", "other cls acc (%)", "fwd transfer (pp)"];
            rows = rows.Select((row, i) => (string[])[.. row, F(summaries[i].Scenario?.OverlappingClassAccuracy),
                F(summaries[i].Scenario?.NonOverlappingClassAccuracy), F(summaries[i].Scenario?.ForwardTransfer?.Mean)]).ToList();
        }
        var csv = new StringBuilder().AppendLine(string.Join(',', columns.Select(c => c.Replace(",", ""))));
        foreach (var row in rows) csv.AppendLine(string.Join(',', row));
        AtomicFile.WriteAllText(folder.ResultPath("comparison.csv"), csv.ToString());
        Plots.AverageAccuracyCurve(summaries.GroupBy(s => s.Method).ToDictionary(g => g.Key, g => g.First().Metrics.AverageAccuracyCurve), folder.ResultPath("average_accuracy.png"));
        var table = new Table().Title("Comparison (same data, backbone and seed)");
        foreach (var c in columns) table.AddColumn(c);
        foreach (var row in rows) table.AddRow(row.Select(Markup.Escape).ToArray());
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine($"Comparison: [bold]{Markup.Escape(folder.Path)}[/]");
    }
}
