namespace ContinualMoE.Scenarios;

/// <summary>
/// A scenario given as its tasks, in a label space of a declared capacity: <see cref="ClassCount"/> is the number of
/// classes the learner's heads are sized for, which may exceed the classes named so far, so that a deployed model can
/// take tasks nobody planned for (docs/deployment.md). Labels 0..names-1 are named; the rest are free slots that a
/// later task's new classes take in order. Masks have <see cref="ClassCount"/> entries.
/// </summary>
public sealed class TaskListScenario : IContinualScenario
{
    private readonly IReadOnlyList<string> _classNames;

    /// <param name="tasks">The tasks in order (Index = position), their labels in this label space.</param>
    /// <param name="classNames">Names of labels 0..n-1 (n at most <paramref name="classCapacity"/>).</param>
    /// <param name="classCapacity">Labels the learner has room for.</param>
    /// <param name="taskCapacity">Tasks the learner has room for (reported as <see cref="TaskCount"/>).</param>
    public TaskListScenario(IReadOnlyList<TaskData> tasks, IReadOnlyList<string> classNames, int classCapacity, int taskCapacity,
        string kind = ScenarioKinds.ClassIncremental, bool taskIncremental = false)
    {
        if (classNames.Count > classCapacity)
            throw new ContinualMoEException($"{classNames.Count} classes exceed the declared class capacity {classCapacity}");
        if (tasks.Count > taskCapacity)
            throw new ContinualMoEException($"{tasks.Count} tasks exceed the declared task capacity {taskCapacity}");
        for (var t = 0; t < tasks.Count; t++)
        {
            if (tasks[t].Index != t) throw new ArgumentException($"task at position {t} has index {tasks[t].Index}");
            foreach (var c in tasks[t].Classes.Concat(tasks[t].TestClasses))
                if ((uint)c >= (uint)classNames.Count)
                    throw new ContinualMoEException($"task {t + 1} uses label {c}, but only {classNames.Count} classes are named");
        }
        Tasks = tasks;
        _classNames = classNames;
        ClassCount = classCapacity;
        TaskCount = taskCapacity;
        Kind = kind;
        TaskIncremental = taskIncremental;
    }

    /// <summary>The same tasks and names as <paramref name="scenario"/>, in a label space of <paramref name="classCapacity"/>
    /// labels and with room for <paramref name="taskCapacity"/> tasks.</summary>
    public static TaskListScenario WithCapacity(IContinualScenario scenario, int classCapacity, int taskCapacity) =>
        new(scenario.Tasks, Enumerable.Range(0, scenario.ClassCount).Select(scenario.OriginalClassName).ToList(),
            classCapacity, taskCapacity, scenario.Kind, scenario.TaskIncremental);

    public string Kind { get; }
    public IReadOnlyList<TaskData> Tasks { get; }
    public int ClassCount { get; }
    public int TaskCount { get; }
    public bool TaskIncremental { get; }
    public IReadOnlyList<int> ClassOrder => Enumerable.Range(0, ClassCount).ToArray();
    public IReadOnlyList<string> ClassNames => _classNames;

    public bool[] ClassMask(int task) => ClassMasks.Of([CheckTask(task)], ClassCount);

    public bool[] SeenClassMask(int task)
    {
        CheckTask(task);
        return ClassMasks.Of(Tasks.Take(task + 1), ClassCount);
    }

    public IReadOnlyList<int> TasksOfClass(int label)
    {
        CheckLabel(label);
        return Tasks.Where(t => t.Classes.Contains(label)).Select(t => t.Index).ToList();
    }

    public int OriginalClass(int label) => CheckLabel(label);

    public string OriginalClassName(int label) => CheckLabel(label) < _classNames.Count ? _classNames[label] : $"(free slot {label})";

    public IContinualScenario Alone(int task) =>
        new TaskListScenario([CheckTask(task) with { Index = 0 }], _classNames, ClassCount, 1, Kind, TaskIncremental);

    private TaskData CheckTask(int task) => (uint)task < (uint)Tasks.Count
        ? Tasks[task]
        : throw new ArgumentOutOfRangeException(nameof(task), task, $"the scenario has {Tasks.Count} tasks");

    private int CheckLabel(int label) => (uint)label < (uint)ClassCount
        ? label
        : throw new ArgumentOutOfRangeException(nameof(label), label, $"the scenario has {ClassCount} labels");
}
