namespace ContinualMoE.Scenarios;

/// <summary>
/// A sequence of tasks over one label space: what the trainer, <c>Experiment</c> and the CLI take. Class-incremental
/// (disjoint classes), overlapping and blurry task streams, with or without a shot limit, are all built by
/// <see cref="ContinualScenario.Create"/>; docs/scenarios.md describes them.
/// <para>
/// Labels are positions in <see cref="ClassOrder"/> over all the scenario's classes. A task's <see cref="TaskData.Classes"/>
/// are the classes in its training set (the cross-entropy's logit mask); its <see cref="TaskData.TestClasses"/> are the
/// classes whose test images form its row of the accuracy matrix.
/// </para>
/// </summary>
public interface IContinualScenario
{
    /// <summary>"class-incremental", "overlap" or "blurry" (<see cref="ScenarioKinds"/>).</summary>
    string Kind { get; }
    IReadOnlyList<TaskData> Tasks { get; }
    int ClassCount { get; }
    int TaskCount { get; }

    /// <summary>The learner may use the true task at test time (task-incremental evaluation).</summary>
    bool TaskIncremental { get; }

    /// <summary>ClassOrder[label] = the original class id of label <c>label</c>.</summary>
    IReadOnlyList<int> ClassOrder { get; }

    /// <summary>True for the classes in task <paramref name="task"/>'s training set.</summary>
    bool[] ClassMask(int task);

    /// <summary>True for the classes in the training sets of tasks 0..<paramref name="task"/> (the classes seen so far).</summary>
    bool[] SeenClassMask(int task);

    /// <summary>The tasks whose training sets hold class <paramref name="label"/>, ascending (one task when classes are
    /// disjoint; several when a class is seen again).</summary>
    IReadOnlyList<int> TasksOfClass(int label);

    /// <summary>The original dataset class id of label <paramref name="label"/>.</summary>
    int OriginalClass(int label);

    string OriginalClassName(int label);

    /// <summary>A one-task scenario of task <paramref name="task"/>'s data and classes alone, in the same label space
    /// (the reference run of forward transfer).</summary>
    IContinualScenario Alone(int task);
}

/// <summary>The scenario kinds (the run config's <c>scenario</c> setting).</summary>
public static class ScenarioKinds
{
    public const string ClassIncremental = "class-incremental";
    public const string Overlap = "overlap";
    public const string Blurry = "blurry";

    public static IReadOnlyList<string> All { get; } = [ClassIncremental, Overlap, Blurry];

    public static string Parse(string? name)
    {
        var normalised = (name ?? ClassIncremental).Trim().ToLowerInvariant();
        return All.Contains(normalised) ? normalised
            : throw new ContinualMoEException($"scenario '{name}' is unknown; scenarios: {string.Join(", ", All)}");
    }
}

/// <summary>Class masks of a scenario's tasks, shared by every <see cref="IContinualScenario"/>.</summary>
public static class ClassMasks
{
    /// <summary>True for every class in the training sets of <paramref name="tasks"/>, over <paramref name="classCount"/> labels.</summary>
    public static bool[] Of(IEnumerable<TaskData> tasks, int classCount)
    {
        var mask = new bool[classCount];
        foreach (var task in tasks)
            foreach (var c in task.Classes) mask[c] = true;
        return mask;
    }
}
