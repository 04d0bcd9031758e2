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
/// metric and, as for any sweep that varies shots or overlap, the grid (<see cref="GridReport"/>: grid.md and grid.csv
/// with accuracy and cost per cell, a sample-efficiency plot and one heatmap per method over shots x overlap). Running
/// it again on the same --output resumes it.
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
            // The sweep's report/ holds the grid (GridReport): grid.md, grid.csv, sample-efficiency curves and heatmaps.
            GridReport.Print(sweep, SweepReport.Statuses(sweep));
            return Task.FromResult(code);
        });
        return command;
    }

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
