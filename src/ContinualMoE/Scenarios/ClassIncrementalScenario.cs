using ContinualMoE.Data;

namespace ContinualMoE.Scenarios;

/// <summary>
/// Splits a dataset's classes into a sequence of tasks (class-incremental learning, or task-incremental when the task id
/// is given at test time).
/// <para>
/// Labels are remapped to their position in the class order: the class at position p of the order gets label p, so task
/// t owns a contiguous label range and "the classes seen so far" is a label prefix. This is what PILOT and L2P's code
/// do; <see cref="OriginalClass"/> and <see cref="OriginalClassName"/> map back.
/// </para>
/// <para>
/// Classes are split evenly, extra classes going one each to the first tasks (10 classes in 3 tasks: 4, 3, 3); with
/// <c>firstTaskClasses</c> the first task gets that many and the rest are split evenly over the remaining tasks
/// (e.g. 50 + 5 x 10 for CIFAR-100 "B50 Inc10").
/// </para>
/// </summary>
public sealed class ClassIncrementalScenario
{
    private readonly int[] _order;
    private readonly int[] _taskOfClass;

    private ClassIncrementalScenario(int[] order, int[] taskOfClass, IReadOnlyList<TaskData> tasks, IReadOnlyList<string> originalNames, bool taskIncremental)
    {
        _order = order;
        _taskOfClass = taskOfClass;
        Tasks = tasks;
        OriginalClassNames = originalNames;
        TaskIncremental = taskIncremental;
    }

    public IReadOnlyList<TaskData> Tasks { get; }
    public int ClassCount => _order.Length;
    public int TaskCount => Tasks.Count;
    public bool TaskIncremental { get; }

    /// <summary>ClassOrder[label] = the original class id of remapped label <c>label</c>.</summary>
    public IReadOnlyList<int> ClassOrder => _order;

    private IReadOnlyList<string> OriginalClassNames { get; }

    /// <param name="data">The dataset; its class ids are 0..ClassCount-1.</param>
    /// <param name="taskCount">Number of tasks (1..ClassCount).</param>
    /// <param name="seed">Seeds the random class order (<see cref="Scenarios.ClassOrder.Random"/>); ignored with an explicit order.</param>
    /// <param name="firstTaskClasses">Classes in the first task; null splits all classes evenly.</param>
    /// <param name="classOrder">Explicit order of original class ids (e.g. from <see cref="Scenarios.ClassOrder.ReadFile"/>).</param>
    /// <param name="taskIncremental">Marks the scenario task-incremental (the learner may use the task id at test time).</param>
    public static ClassIncrementalScenario Create(DatasetSplits data, int taskCount, int seed, int? firstTaskClasses = null,
        IReadOnlyList<int>? classOrder = null, bool taskIncremental = false)
    {
        var classCount = data.Train.ClassNames.Count;
        if (data.Test.ClassNames.Count != classCount)
            throw new ContinualMoEException($"train set '{data.Train.Name}' has {classCount} classes but test set '{data.Test.Name}' has {data.Test.ClassNames.Count}");
        var order = classOrder?.ToArray() ?? Scenarios.ClassOrder.Random(classCount, seed);
        var problem = Scenarios.ClassOrder.PermutationProblem(order, classCount);
        if (problem != null) throw new ContinualMoEException($"class order: {problem}");

        var sizes = TaskSizes(classCount, taskCount, firstTaskClasses);
        var train = new RelabeledDataset(data.Train, order);
        var test = new RelabeledDataset(data.Test, order);
        var taskOfClass = new int[classCount];
        var tasks = new List<TaskData>();
        var start = 0;
        for (var t = 0; t < sizes.Length; t++)
        {
            var classes = Enumerable.Range(start, sizes[t]).ToArray();
            foreach (var c in classes) taskOfClass[c] = t;
            int low = start, high = start + sizes[t];
            tasks.Add(new TaskData(t, classes,
                Subset.WhereLabel(train, l => l >= low && l < high, $"{data.Train.Name}-task{t}"),
                Subset.WhereLabel(test, l => l >= low && l < high, $"{data.Test.Name}-task{t}")));
            start = high;
        }
        return new ClassIncrementalScenario(order, taskOfClass, tasks, data.Train.ClassNames, taskIncremental);
    }

    /// <summary>How many classes each task gets (see the class summary).</summary>
    public static int[] TaskSizes(int classCount, int taskCount, int? firstTaskClasses = null)
    {
        if (taskCount < 1 || taskCount > classCount)
            throw new ContinualMoEException($"task count {taskCount} must be between 1 and the number of classes ({classCount})");
        var sizes = new int[taskCount];
        var first = 0;
        if (firstTaskClasses is { } f)
        {
            if (f < 1 || f > classCount - (taskCount - 1))
                throw new ContinualMoEException($"first task classes {f} must be between 1 and {classCount - (taskCount - 1)} ({classCount} classes, {taskCount} tasks)");
            if (taskCount == 1 && f != classCount)
                throw new ContinualMoEException($"with one task the first task must hold all {classCount} classes, not {f}");
            sizes[0] = f;
            first = 1;
        }
        var remaining = classCount - sizes[0];
        var rest = taskCount - first;
        for (var t = first; t < taskCount; t++)
            sizes[t] = remaining / rest + (t - first < remaining % rest ? 1 : 0);
        return sizes;
    }

    /// <summary>The task that owns remapped label <paramref name="label"/>.</summary>
    public int TaskOfClass(int label) => _taskOfClass[CheckLabel(label)];

    /// <summary>True for the remapped labels of task <paramref name="task"/>.</summary>
    public bool[] ClassMask(int task)
    {
        var mask = new bool[ClassCount];
        foreach (var c in CheckTask(task).Classes) mask[c] = true;
        return mask;
    }

    /// <summary>True for the remapped labels of tasks 0..<paramref name="task"/> (the classes seen so far).</summary>
    public bool[] SeenClassMask(int task)
    {
        CheckTask(task);
        var mask = new bool[ClassCount];
        for (var t = 0; t <= task; t++)
            foreach (var c in Tasks[t].Classes) mask[c] = true;
        return mask;
    }

    /// <summary>The original dataset class id of remapped label <paramref name="label"/>.</summary>
    public int OriginalClass(int label) => _order[CheckLabel(label)];

    public string OriginalClassName(int label) => OriginalClassNames[OriginalClass(label)];

    private int CheckLabel(int label) =>
        (uint)label < (uint)ClassCount ? label : throw new ArgumentOutOfRangeException(nameof(label), label, $"labels are 0..{ClassCount - 1}");

    private TaskData CheckTask(int task) =>
        (uint)task < (uint)Tasks.Count ? Tasks[task] : throw new ArgumentOutOfRangeException(nameof(task), task, $"tasks are 0..{Tasks.Count - 1}");
}
