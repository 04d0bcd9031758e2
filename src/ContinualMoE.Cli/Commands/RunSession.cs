using System.Diagnostics;
using System.Text.Json;
using ContinualMoE.Checkpoints;
using ContinualMoE.Cli.Reporting;
using ContinualMoE.Evaluation;
using ContinualMoE.Experiments;
using ContinualMoE.Training;
using Spectre.Console;
using static TorchSharp.torch;

namespace ContinualMoE.Cli.Commands;

/// <summary>
/// Runs (or resumes) one experiment and owns everything it writes: config.json, accuracy_matrix.csv, metrics.json,
/// epochs.jsonl, plots, and checkpoint.safetensors after every task (learner state plus, in its metadata, the config,
/// the finished tasks and the matrices). Every file is written atomically.
/// </summary>
internal static class RunSession
{
    public const string CheckpointFileName = "checkpoint.safetensors";
    private const string CheckpointFormat = "continual-moe-checkpoint/1";

    /// <summary>Starts a run. <paramref name="taskFinished"/> is called after each task's checkpoint is saved.</summary>
    public static int Start(RunConfig config, string folderPath, bool force, CancellationToken cancellation, Action<int>? taskFinished = null)
    {
        Validate(config);
        // Everything that can fail on bad input (names, data, weights) happens before the run folder is made.
        using var experiment = Build(config, cancellation);
        var folder = RunFolder.Create(folderPath, force);
        folder.WriteConfig(config);
        return Execute(experiment, folder, startTask: 0, results: null, cancellation, taskFinished);
    }

    private static Experiment Build(RunConfig config, CancellationToken cancellation)
    {
        ComputeDevice.ConfigureThreads();
        var data = Experiment.LoadData(config);   // a missing dataset fails before any pretraining starts
        var weights = BackboneWeights.Resolve(config, cancellation);
        return Experiment.Build(config, weights, data);
    }

    public static int Resume(string folderPath, string? configFile, IReadOnlyList<string> overrides, CancellationToken cancellation,
        Action<int>? taskFinished = null)
    {
        var checkpointPath = Path.Combine(folderPath, CheckpointFileName);
        if (!File.Exists(checkpointPath))
            throw ContinualMoEException.ForFile(checkpointPath, "no checkpoint to resume from (the run stopped before its first task finished, or this is not a run folder)");
        var state = SafeTensorsFile.Read(checkpointPath, out var metadata);
        if (!metadata.TryGetValue("format", out var format) || format != CheckpointFormat)
            throw ContinualMoEException.ForFile(checkpointPath, $"not a {CheckpointFormat} checkpoint");
        var saved = RunConfig.FromJson(metadata["config"], checkpointPath);
        if (configFile is not null || overrides.Count > 0)
        {
            var requested = (configFile is null ? saved : RunConfig.FromJson(File.ReadAllText(configFile), configFile)).WithOverrides(overrides);
            var differences = saved.Differences(requested);
            if (differences.Count > 0)
                throw ContinualMoEException.ForFile(checkpointPath, $"--resume with a different config; differing settings: {string.Join("; ", differences)}");
        }
        var finished = int.Parse(metadata["finished_tasks"]);
        var results = new RunResults(AccuracyMatrix.FromCsv(metadata["accuracy_matrix"]), AccuracyMatrix.FromCsv(metadata["task_identity_matrix"]));
        var folder = RunFolder.Open(folderPath);
        if (finished >= saved.Tasks)
        {
            AnsiConsole.MarkupLine($"The run in [bold]{Markup.Escape(folder.Path)}[/] has finished all {saved.Tasks} tasks; nothing to resume.");
            return 0;
        }
        AnsiConsole.MarkupLine($"Resuming [bold]{Markup.Escape(folderPath)}[/] after task {finished} of {saved.Tasks}.");
        using var experiment = Build(saved, cancellation);
        experiment.Learner.LoadState(state.Where(kv => kv.Key.StartsWith("learner.")).ToDictionary(kv => kv.Key["learner.".Length..], kv => kv.Value));
        return Execute(experiment, folder, finished, results, cancellation, taskFinished);
    }

    private static int Execute(Experiment experiment, RunFolder folder, int startTask, RunResults? results,
        CancellationToken cancellation, Action<int>? taskFinished)
    {
        var config = experiment.Config;
        PrintHeader(experiment);

        var observer = new ConsoleObserver(folder);
        var trainer = experiment.Trainer(observer);
        var expertPlots = new ExpertPlots(folder);
        var clock = Stopwatch.StartNew();
        RunResults final;
        try
        {
            final = observer.Run(() => trainer.Run(experiment.Learner, startTask, results, (task, soFar) =>
            {
                SaveCheckpoint(folder, experiment, task + 1, soFar);
                folder.WriteAccuracyMatrix(soFar.Accuracy);
                if (experiment.Learner is IExpertUsage usage) expertPlots.Record(usage, task);
                if (experiment.Learner is IAdapterGrowth growth) AdapterPlots(folder, growth, config.Method);
                taskFinished?.Invoke(task);
            }, cancellation));
        }
        catch (OperationCanceledException)
        {
            AnsiConsole.MarkupLine($"[yellow]Interrupted.[/] Finished tasks are saved; continue with: continual-moe run --resume {Markup.Escape(folder.Path)}");
            return 130;
        }
        catch (System.Runtime.InteropServices.ExternalException e)
        {
            // libtorch failed inside a task (see docs/known-issues.md); what finished before is in the checkpoint.
            var line = e.Message.Split('\n')[0].Trim();
            throw new ContinualMoEException($"libtorch error during the run ({line}); tasks finished before it are saved: continue with continual-moe run --resume {folder.Path}", e);
        }

        var metrics = ContinualMetrics.Compute(final.Accuracy, experiment.Scenario.Tasks.Select(t => t.Test.Count).ToList(),
            final.HasTaskIdentity ? final.TaskIdentity : null);
        var cost = experiment.Learner.Cost(config.Tasks);
        var summary = new RunSummary(config.Method, experiment.BackboneDescription, metrics, cost,
            observer.TrainImagesPerSecond, observer.TestImagesPerSecond, clock.Elapsed.TotalSeconds);
        folder.WriteMetrics(summary);
        Plots.AccuracyHeatmap(final.Accuracy, folder.ResultPath("accuracy_matrix.png"), $"{config.Method}: accuracy (%) of task i after task t");
        Plots.AverageAccuracyCurve(new Dictionary<string, double[]> { [config.Method] = metrics.AverageAccuracyCurve },
            folder.ResultPath("average_accuracy.png"));

        AnsiConsole.Write(SummaryTable.AccuracyGrid(final.Accuracy));
        AnsiConsole.Write(SummaryTable.Metrics(metrics));
        AnsiConsole.MarkupLine($"Trainable parameters {cost.TrainableParameters:N0}, backbone passes per test image {cost.BackbonePassesPerTestImage}, " +
                               $"train {observer.TrainImagesPerSecond:F0} img/s, test {observer.TestImagesPerSecond:F0} img/s, wall time {clock.Elapsed.TotalSeconds:F0} s.");
        AnsiConsole.MarkupLine($"Results: [bold]{Markup.Escape(folder.Path)}[/]");
        return 0;
    }

    /// <summary>Growth of low-rank experts against one expert per task, and shared vs unique components per layer.</summary>
    private static void AdapterPlots(RunFolder folder, IAdapterGrowth growth, string method)
    {
        Plots.ParameterGrowth(growth.ParametersAfterTask, growth.OneTaskExpertParameters, folder.ResultPath("parameter_growth.png"),
            $"{method}: adapter parameters after each task");
        Plots.SharedUniqueComponents(growth.ComponentsPerSite, folder.ResultPath("shared_unique_components.png"),
            $"{method}: shared vs unique components per layer");
    }

    /// <summary>Checks names before anything is written, so a typo leaves no half-made run folder behind.</summary>
    public static void Validate(RunConfig config)
    {
        Methods.MethodRegistry.EnsureKnown(config.Method);
        Data.DatasetCatalog.EnsureKnown(config.Dataset);
        Backbones.VitRegistry.Get(config.Backbone);
    }

    private static void PrintHeader(Experiment experiment)
    {
        var c = experiment.Config;
        AnsiConsole.MarkupLine($"[bold]{Markup.Escape(c.Method)}[/] on [bold]{Markup.Escape(c.Dataset)}[/]: {experiment.Scenario.Tasks.Count} tasks, " +
                               $"{experiment.Scenario.ClassCount} classes, backbone {Markup.Escape(experiment.BackboneDescription)}, seed {c.Seed}");
    }

    private static void SaveCheckpoint(RunFolder folder, Experiment experiment, int finishedTasks, RunResults results)
    {
        var tensors = experiment.Learner.State().ToDictionary(kv => "learner." + kv.Key, kv => kv.Value);
        var metadata = new Dictionary<string, string>
        {
            ["format"] = CheckpointFormat,
            ["config"] = experiment.Config.ToJson(),
            ["finished_tasks"] = finishedTasks.ToString(),
            ["accuracy_matrix"] = results.Accuracy.ToCsv(),
            ["task_identity_matrix"] = results.TaskIdentity.ToCsv(),
        };
        SafeTensorsFile.Write(folder.ResultPath(CheckpointFileName), tensors, metadata);
    }
}

/// <summary>metrics.json: the metrics, the method's cost, and measured speed.</summary>
internal sealed record RunSummary(string Method, string Backbone, ContinualMetrics Metrics, MethodCost Cost,
    double TrainImagesPerSecond, double TestImagesPerSecond, double WallSeconds);
