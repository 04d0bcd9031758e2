using ContinualMoE.Experiments;
using ContinualMoE.Training;

namespace ContinualMoE.Deployment;

/// <summary>
/// manifest.json of one model-package version: everything besides the method state (state.safetensors) that a deployed
/// model needs to predict, learn its next task and report what it knows. JSON names are snake_case.
/// </summary>
public sealed record PackageManifest
{
    public const string CurrentFormat = "continual-moe-package/1";

    public string Format { get; init; } = CurrentFormat;
    public int Version { get; init; }
    public DateTimeOffset Created { get; init; }
    public required BackboneReference Backbone { get; init; }
    /// <summary>The run config: method and method settings, data settings (image size follows the backbone), seed.</summary>
    public required RunConfig Config { get; init; }
    public required PackageCapacity Capacity { get; init; }
    /// <summary>Names of labels 0..n-1 (the label vocabulary; n at most the class capacity).</summary>
    public required List<string> ClassNames { get; init; }
    public required List<LearnedTask> Tasks { get; init; }
    /// <summary>Accuracy of task i after task t (CSV of <see cref="Evaluation.AccuracyMatrix"/>, task-capacity square).</summary>
    public required string AccuracyMatrix { get; init; }
    public string? TaskIdentityMatrix { get; init; }
    public List<VersionRecord> History { get; init; } = [];
    /// <summary>SHA-256 of this version's state.safetensors, set when the version is written and checked when it is loaded.</summary>
    public string? StateSha256 { get; init; }
    public MethodCost? Cost { get; init; }

    public string Method => Config.Method;
}

/// <summary>The frozen backbone: registry name or geometry, weights file (null: seeded random init) and its SHA-256
/// over tensors (<see cref="Backbones.BackboneFingerprint"/>).</summary>
public sealed record BackboneReference(string Spec, string? WeightsPath, string Sha256);

/// <summary>Classes and tasks the learner's heads and pools are sized for.</summary>
public sealed record PackageCapacity(int Classes, int Tasks);

/// <summary>A task the model has learned: its labels, where its data came from, when, and how many images.</summary>
public sealed record LearnedTask(int Index, List<int> Classes, TaskSource Source, DateTimeOffset LearnedAt, int TrainImages, int TestImages);

/// <summary>Where a task's data lives: an image folder (class subfolders; train/ and test/, else a seeded 80/20 split),
/// a dataset spec (<see cref="Data.DatasetSpec"/>: a catalog dataset, optionally a class subset and per-class limits),
/// or task <see cref="RunTask"/> of the scenario the package's run config builds (an exported run).</summary>
public sealed record TaskSource(string Kind, string? Path = null, int? RunTask = null, string? Dataset = null)
{
    public const string Folder = "folder";
    public const string Run = "run";
    public const string DatasetKind = "dataset";

    public static TaskSource FromFolder(string path) => new(Folder, System.IO.Path.GetFullPath(path));

    /// <summary>What <c>--data</c> names: a folder, or a dataset spec (one-line error for anything else).</summary>
    public static TaskSource FromData(string data)
    {
        var spec = Data.DatasetSpec.Parse(data);
        return spec.IsPlainFolder ? FromFolder(spec.Root!) : new(DatasetKind, Dataset: spec.ToString());
    }

    public override string ToString() => Kind switch
    {
        Run => $"task {RunTask + 1} of the exported run",
        DatasetKind => Dataset ?? Kind,
        _ => Path ?? Kind,
    };
}

/// <summary>One line of the package's history: version, tasks known, average accuracy over them, what happened.</summary>
public sealed record VersionRecord(int Version, DateTimeOffset Created, int Tasks, double? AverageAccuracy, string Event);
