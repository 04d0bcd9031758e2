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
    internal const string CheckpointFormat = "continual-moe-checkpoint/1";

    /// <summary>Starts a run. <paramref name="taskFinished"/> is called after each task's checkpoint is saved;
    /// <paramref name="references"/> holds forward-transfer references computed by earlier runs of a compare.</summary>
    public static int Start(RunConfig config, string folderPath, bool force, CancellationToken cancellation, Action<int>? taskFinished = null,
        TaskAloneReferences? references = null)
    {
        Validate(config);
        // Everything that can fail on bad input (names, data, weights) happens before the run folder is made.
        using var experiment = Build(config, cancellation);
        var folder = RunFolder.Create(folderPath, force);
        folder.WriteConfig(experiment.Config);   // precision auto written as what it resolved to
        return Execute(experiment, folder, startTask: 0, results: null, parametersBefore: [], cancellation, taskFinished, references);
    }

    private static Experiment Build(RunConfig config, CancellationToken cancellation)
    {
        ComputeDevice.ConfigureThreads();
        if (TextStreams.IsText(config.Dataset))
        {
            if (TextStreams.UsesDefaultLanguageModel(config)) LanguageModelCommand.EnsureDefaultModel(cancellation);
            return Experiment.Build(config, backboneWeights: null);
        }
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
        try
        {
            return Resume(folderPath, checkpointPath, state, metadata, configFile, overrides, cancellation, taskFinished);
        }
        finally
        {
            // LoadState copies into the learner's own tensors.
            foreach (var tensor in state.Values) tensor.Dispose();
        }
    }

    private static int Resume(string folderPath, string checkpointPath, Dictionary<string, Tensor> state, Dictionary<string, string> metadata,
        string? configFile, IReadOnlyList<string> overrides, CancellationToken cancellation, Action<int>? taskFinished)
    {
        string Meta(string key) => metadata.TryGetValue(key, out var value)
            ? value
            : throw ContinualMoEException.ForFile(checkpointPath, $"checkpoint metadata lacks '{key}' (damaged, or not written by continual-moe)");
        if (!metadata.TryGetValue("format", out var format) || format != CheckpointFormat)
            throw ContinualMoEException.ForFile(checkpointPath, $"not a {CheckpointFormat} checkpoint");
        var saved = RunConfig.FromJson(Meta("config"), checkpointPath);
        if (configFile is not null || overrides.Count > 0)
        {
            var requested = (configFile is null ? saved : RunConfig.FromJson(File.ReadAllText(configFile), configFile)).WithOverrides(overrides);
            requested = PrecisionPolicy.Resolve(requested);   // the checkpoint holds the resolved precision
            var differences = saved.Differences(requested);
            if (differences.Count > 0)
                throw ContinualMoEException.ForFile(checkpointPath, $"--resume with a different config; differing settings: {string.Join("; ", differences)}");
        }
        if (!int.TryParse(Meta("finished_tasks"), out var finished) || finished < 1 || finished > saved.Tasks)
            throw ContinualMoEException.ForFile(checkpointPath, $"checkpoint metadata has finished_tasks '{Meta("finished_tasks")}', not a task count in 1..{saved.Tasks}");
        AccuracyMatrix Matrix(string key)
        {
            var csv = Meta(key);
            try { return AccuracyMatrix.FromCsv(csv); }
            catch (Exception e)
            {
                throw ContinualMoEException.ForFile(checkpointPath, $"checkpoint metadata '{key}' is unreadable ({e.Message.Split('\n')[0]})", e);
            }
        }
        var results = new RunResults(Matrix("accuracy_matrix"), Matrix("task_identity_matrix"));
        if (results.Accuracy.TaskCount != saved.Tasks || results.Accuracy.TasksTrained != finished)
            throw ContinualMoEException.ForFile(checkpointPath, $"checkpoint accuracy matrix covers {results.Accuracy.TasksTrained} of {results.Accuracy.TaskCount} tasks, its metadata says {finished} of {saved.Tasks}");

        var folder = RunFolder.Open(folderPath);
        var missingResults = FinalResultFiles.Where(name => !File.Exists(Path.Combine(folder.Path, name))).ToList();
        if (finished >= saved.Tasks && missingResults.Count == 0)
        {
            AnsiConsole.MarkupLine($"The run in [bold]{Markup.Escape(folder.Path)}[/] has finished all {saved.Tasks} tasks; nothing to resume.");
            return 0;
        }
        AnsiConsole.MarkupLine(finished >= saved.Tasks
            ? $"All {saved.Tasks} tasks of [bold]{Markup.Escape(folderPath)}[/] are trained; writing the missing {Markup.Escape(string.Join(", ", missingResults))}."
            : $"Resuming [bold]{Markup.Escape(folderPath)}[/] after task {finished} of {saved.Tasks}.");
        using var experiment = Build(saved, cancellation);
        if (metadata.TryGetValue(BackboneHashKey, out var savedHash))
        {
            var hash = BackboneHash(experiment);
            if (hash != savedHash)
                throw ContinualMoEException.ForFile(checkpointPath,
                    $"the backbone weights differ from the run's (sha256 {hash[..12]}.. vs {savedHash[..Math.Min(12, savedHash.Length)]}..); resume with the weights the run started with");
        }
        try
        {
            experiment.Learner.LoadState(state.Where(kv => kv.Key.StartsWith("learner.")).ToDictionary(kv => kv.Key["learner.".Length..], kv => kv.Value));
        }
        catch (ContinualMoEException e)
        {
            throw ContinualMoEException.ForFile(checkpointPath, e.Message, e);
        }
        // Lines of the task that was running when the process died are logged again when it reruns; a file it was
        // writing when killed left a temporary behind.
        folder.TruncateEpochLog(firstTaskToDrop: finished);
        AtomicFile.RemoveLeftovers(folder.Path);
        return Execute(experiment, folder, finished, results, ParametersAfterTask(metadata, finished), cancellation, taskFinished);
    }

    /// <summary>Whether the run in <paramref name="folderPath"/> has finished and written every final result file.</summary>
    public static bool IsComplete(string folderPath) => FinalResultFiles.All(name => File.Exists(Path.Combine(folderPath, name)));

    /// <summary>What a finished run has written after its last checkpoint; a resume writes whichever is missing.</summary>
    private static readonly string[] FinalResultFiles = [RunFolder.MetricsFileName, RunFolder.AccuracyMatrixFileName, "accuracy_matrix.png", "average_accuracy.png"];

    internal const string BackboneHashKey = "backbone_sha256";

    internal static string BackboneHash(Experiment experiment) => Backbones.BackboneFingerprint.Sha256(experiment.FrozenBackbone);

    internal const string ParametersAfterTaskKey = "trainable_parameters_after_task";

    /// <summary>The trainable parameters after each finished task, from the checkpoint; null when it lacks them.</summary>
    private static List<long>? ParametersAfterTask(Dictionary<string, string> metadata, int finished)
    {
        if (!metadata.TryGetValue(ParametersAfterTaskKey, out var text)) return null;
        var values = text.Split(',', StringSplitOptions.RemoveEmptyEntries)
            .Select(v => long.TryParse(v, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var n) ? n : -1).ToList();
        return values.Count == finished && values.All(v => v >= 0) ? values : null;
    }

    private static int Execute(Experiment experiment, RunFolder folder, int startTask, RunResults? results,
        List<long>? parametersBefore, CancellationToken cancellation, Action<int>? taskFinished, TaskAloneReferences? references = null)
    {
        // Null once a task's count is unknown (a resumed checkpoint without the record): no partial list is reported.
        var parametersAfterTask = parametersBefore;
        var config = experiment.Config;
        PrintHeader(experiment);

        var observer = new ConsoleObserver(folder) { Unit = experiment.Data.ThroughputUnit };
        var trainer = experiment.Trainer(observer);
        var expertPlots = new ExpertPlots(folder);
        var clock = Stopwatch.StartNew();
        var backboneHash = BackboneHash(experiment);
        RunResults final;
        try
        {
            final = observer.Run(() => trainer.Run(experiment.Learner, startTask, results, (task, soFar) =>
            {
                parametersAfterTask?.Add(experiment.Learner.Cost(task + 1).TrainableParameters);
                SaveCheckpoint(folder, experiment, task + 1, soFar, backboneHash, parametersAfterTask);
                folder.WriteAccuracyMatrix(soFar.Accuracy);
                if (experiment.Learner is IExpertUsage usage) expertPlots.Record(usage, task);
                if (experiment.Learner is IExpertPoolGrowth pool) PoolPlots.Record(pool, folder);
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

        folder.WriteAccuracyMatrix(final.Accuracy);
        var metrics = ContinualMetrics.Compute(final.Accuracy, experiment.Scenario.Tasks.Select(t => t.Test.Count).ToList(),
            final.HasTaskIdentity ? final.TaskIdentity : null);
        var cost = experiment.Learner.Cost(config.Tasks);
        var scenarioMetrics = ScenarioMetrics(experiment, final, cancellation, references);
        var summary = new RunSummary(config.Method, experiment.BackboneDescription, metrics, cost,
            observer.TrainImagesPerSecond, observer.TestImagesPerSecond, clock.Elapsed.TotalSeconds, scenarioMetrics)
        {
            ThroughputUnit = experiment.Data.ThroughputUnit == "img" ? null : "tokens",
            TrainableParametersAfterTask = parametersAfterTask?.Count == config.Tasks ? parametersAfterTask : null,
        };
        var unit = experiment.Data.ThroughputUnit;
        folder.WriteMetrics(summary);
        Plots.AccuracyHeatmap(final.Accuracy, folder.ResultPath("accuracy_matrix.png"), $"{config.Method}: accuracy (%) of task i after task t");
        Plots.AverageAccuracyCurve(new Dictionary<string, double[]> { [config.Method] = metrics.AverageAccuracyCurve },
            folder.ResultPath("average_accuracy.png"));

        AnsiConsole.Write(SummaryTable.AccuracyGrid(final.Accuracy));
        AnsiConsole.Write(SummaryTable.Metrics(metrics));
        if (scenarioMetrics is not null) PrintScenarioMetrics(scenarioMetrics);
        AnsiConsole.MarkupLine($"Trainable parameters {cost.TrainableParameters:N0}, backbone passes per test image {cost.BackbonePassesPerTestImage}, " +
                               $"train {observer.TrainImagesPerSecond:F0} {unit}/s, test {observer.TestImagesPerSecond:F0} {unit}/s, wall time {clock.Elapsed.TotalSeconds:F0} s.");
        AnsiConsole.MarkupLine($"Results: [bold]{Markup.Escape(folder.Path)}[/]");
        return 0;
    }

    /// <summary>Overlapping / non-overlapping class accuracy and, with forward_transfer, the task-alone reference runs.</summary>
    private static ScenarioMetrics? ScenarioMetrics(Experiment experiment, RunResults final, CancellationToken cancellation,
        TaskAloneReferences? references)
    {
        if (final.LatestClasses is not { } classes) return null;
        double[]? alone = null;
        if (experiment.Config.ForwardTransfer)
        {
            var reusedBefore = references?.Reused ?? 0;
            alone = experiment.TaskAloneAccuracies(t => AnsiConsole.MarkupLine($"Forward-transfer reference: task {t + 1} of {experiment.Scenario.TaskCount} alone"),
                cancellation, references);
            if (references is not null && references.Reused > reusedBefore)
                AnsiConsole.MarkupLine($"Forward-transfer reference: {references.Reused - reusedBefore} of {experiment.Scenario.TaskCount} tasks reused from an earlier run of this compare (the same learner alone)");
        }
        return Evaluation.ScenarioMetrics.Compute(experiment.Scenario, classes, final.Accuracy, alone);
    }

    private static void PrintScenarioMetrics(ScenarioMetrics m)
    {
        static string F(double? v) => v is double d ? $"{d:F2}" : "-";
        if (m.OverlappingClasses > 0)
            AnsiConsole.MarkupLine($"Final accuracy on overlapping classes ({m.OverlappingClasses}): {F(m.OverlappingClassAccuracy)}%, " +
                                   $"on non-overlapping classes ({m.NonOverlappingClasses}): {F(m.NonOverlappingClassAccuracy)}%.");
        if (m.ForwardTransfer is { } fwt)
            AnsiConsole.MarkupLine($"Forward transfer: {F(fwt.Mean)} pp (task alone: {string.Join(", ", fwt.Alone.Select(a => $"{a:F1}"))}%).");
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
        Experiment.ScenarioSettings(config with { ClassOrderFile = null }, 1).Validate();
        Methods.MethodRegistry.EnsureKnown(config.Method);
        if (TextStreams.IsText(config.Dataset))
        {
            Methods.MethodRegistry.EnsureSupports(config.Method, Data.InputModality.Text);
            TextStreams.EnsureLanguageModelNamed(config);
            return;
        }
        Methods.MethodRegistry.EnsureSupports(config.Method, Data.InputModality.Image);
        Data.DatasetCatalog.EnsureKnown(config.Dataset);
        Backbones.BackboneSpec.Parse(config.Backbone);
    }

    private static void PrintHeader(Experiment experiment)
    {
        var c = experiment.Config;
        var scenario = experiment.Scenario.Kind + (c.Shots is int shots ? $", {shots} shots" : "") +
                       (c.Overlap > 0 ? $", overlap {c.Overlap}" : "") + (c.Blurry > 0 ? $", blurry {c.Blurry}" : "");
        AnsiConsole.MarkupLine($"[bold]{Markup.Escape(c.Method)}[/] on [bold]{Markup.Escape(c.Dataset)}[/] ({Markup.Escape(scenario)}): {experiment.Scenario.Tasks.Count} tasks, " +
                               $"{experiment.Scenario.ClassCount} classes, backbone {Markup.Escape(experiment.BackboneDescription)}, seed {c.Seed}");
    }

    private static void SaveCheckpoint(RunFolder folder, Experiment experiment, int finishedTasks, RunResults results, string backboneHash,
        IReadOnlyList<long>? parametersAfterTask)
    {
        var tensors = experiment.Learner.State().ToDictionary(kv => "learner." + kv.Key, kv => kv.Value);
        var metadata = new Dictionary<string, string>
        {
            ["format"] = CheckpointFormat,
            ["config"] = experiment.Config.ToJson(),
            ["finished_tasks"] = finishedTasks.ToString(),
            ["accuracy_matrix"] = results.Accuracy.ToCsv(),
            ["task_identity_matrix"] = results.TaskIdentity.ToCsv(),
            [BackboneHashKey] = backboneHash,
        };
        if (parametersAfterTask is not null)
            metadata[ParametersAfterTaskKey] = string.Join(',', parametersAfterTask.Select(p => p.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        SafeTensorsFile.Write(folder.ResultPath(CheckpointFileName), tensors, metadata);
    }
}

/// <summary>metrics.json: the metrics, the method's cost, and measured speed.</summary>
internal sealed record RunSummary(string Method, string Backbone, ContinualMetrics Metrics, MethodCost Cost,
    double TrainImagesPerSecond, double TestImagesPerSecond, double WallSeconds, ScenarioMetrics? Scenario = null)
{
    /// <summary>"tokens" when the per-second figures count tokens (text runs); null (left out) when they count images.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? ThroughputUnit { get; init; }

    /// <summary>The method's trainable parameters after each task (a growing pool grows here); null when a resumed run's
    /// checkpoint predates this record.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<long>? TrainableParametersAfterTask { get; init; }
}
