using ContinualMoE.Data;

namespace ContinualMoE.Scenarios;

/// <summary>
/// The scenario implementation: a sequence of tasks built from a dataset by <see cref="Create"/> (class-incremental,
/// overlapping or blurry, optionally with a shot limit; docs/scenarios.md). Masks and the tasks of each class follow
/// from the tasks' class lists, so every kind is served by the same code.
/// <para>
/// Labels are remapped to their position in the class order (label p is the class at position p), as PILOT's and L2P's
/// code do; new classes enter in that order, so in a class-incremental scenario task t owns a contiguous label range.
/// </para>
/// </summary>
public class ContinualScenario : IContinualScenario
{
    private readonly int[] _order;
    private readonly int[][] _tasksOfClass;
    private readonly IReadOnlyList<string> _originalNames;

    protected ContinualScenario(ContinualScenario other)
        : this(other.Kind, other._order, other.Tasks, other._originalNames, other.TaskIncremental) { }

    private ContinualScenario(string kind, int[] order, IReadOnlyList<TaskData> tasks, IReadOnlyList<string> originalNames, bool taskIncremental)
    {
        Kind = kind;
        _order = order;
        Tasks = tasks;
        _originalNames = originalNames;
        TaskIncremental = taskIncremental;
        var lists = Enumerable.Range(0, order.Length).Select(_ => new List<int>()).ToArray();
        foreach (var task in tasks)
            foreach (var c in task.Classes) lists[c].Add(task.Index);
        _tasksOfClass = lists.Select(l => l.ToArray()).ToArray();
    }

    /// <summary>A scenario of tasks already in one label space (labels are the class ids, the order is the identity),
    /// e.g. text task streams (<see cref="TextScenario"/>).</summary>
    public static ContinualScenario FromTasks(string kind, IReadOnlyList<TaskData> tasks, IReadOnlyList<string> classNames) =>
        new(kind, Enumerable.Range(0, classNames.Count).ToArray(), tasks, classNames, taskIncremental: false);

    public string Kind { get; }
    public IReadOnlyList<TaskData> Tasks { get; }
    public int ClassCount => _order.Length;
    public int TaskCount => Tasks.Count;
    public bool TaskIncremental { get; }
    public IReadOnlyList<int> ClassOrder => _order;

    public bool[] ClassMask(int task) => ClassMasks.Of([CheckTask(task)], ClassCount);

    public bool[] SeenClassMask(int task)
    {
        CheckTask(task);
        return ClassMasks.Of(Tasks.Take(task + 1), ClassCount);
    }

    public IReadOnlyList<int> TasksOfClass(int label) => _tasksOfClass[CheckLabel(label)];

    public int OriginalClass(int label) => _order[CheckLabel(label)];

    public string OriginalClassName(int label) => _originalNames[OriginalClass(label)];

    /// <summary>A one-task scenario holding only task <paramref name="task"/>'s data and classes (the "task alone"
    /// reference of forward transfer; labels stay in this scenario's label space).</summary>
    public IContinualScenario Alone(int task)
    {
        var t = CheckTask(task);
        return new ContinualScenario(Kind, _order, [t with { Index = 0 }], _originalNames, TaskIncremental);
    }

    /// <summary>Builds the scenario <paramref name="settings"/> describe from <paramref name="data"/> (class ids 0..C-1).</summary>
    public static ContinualScenario Create(DatasetSplits data, ScenarioSettings settings)
    {
        settings.Validate();
        var kind = ScenarioKinds.Parse(settings.Kind);
        var classCount = data.Train.ClassNames.Count;
        if (data.Test.ClassNames.Count != classCount)
            throw new ContinualMoEException($"train set '{data.Train.Name}' has {classCount} classes but test set '{data.Test.Name}' has {data.Test.ClassNames.Count}");
        var order = settings.ClassOrder?.ToArray() ?? Scenarios.ClassOrder.Random(classCount, settings.Seed);
        var problem = Scenarios.ClassOrder.PermutationProblem(order, classCount);
        if (problem != null) throw new ContinualMoEException($"class order: {problem}");

        var layout = TaskLayout(classCount, settings.Tasks, settings.FirstTaskClasses, settings.Overlap);
        var classes = AssignClasses(layout, settings.Seed);
        var train = new RelabeledDataset(data.Train, order);
        var test = new RelabeledDataset(data.Test, order);
        var labels = train.Labels();
        var samples = SplitSamples(train, labels, classes, settings);
        var received = settings.Blurry > 0 ? Blur(samples, labels, settings) : null;

        var tasks = new List<TaskData>();
        for (var t = 0; t < classes.Count; t++)
        {
            var own = classes[t];
            var trainClasses = received is null ? own : [.. own.Concat(received[t].Select(i => labels[i])).Distinct().Order()];
            var indices = samples[t].Concat(received?[t] ?? []).Order().ToArray();
            var testMask = new bool[classCount];
            foreach (var c in own) testMask[c] = true;
            tasks.Add(new TaskData(t, trainClasses,
                new Subset(train, indices, $"{data.Train.Name}-task{t}"),
                Subset.WhereLabel(test, l => testMask[l], $"{data.Test.Name}-task{t}")) { TestClasses = own });
        }
        return new ContinualScenario(kind, order, tasks, data.Train.ClassNames, settings.TaskIncremental);
    }

    /// <summary>
    /// Task sizes (classes per task) and how many of each task's classes were seen in earlier tasks:
    /// repeated_t = round(rho * size_t) (half away from zero) for t ≥ 1, the rest new. Sizes are as even as possible (the
    /// first tasks one larger) such that the tasks introduce every class exactly once; with
    /// <paramref name="firstTaskClasses"/> the first task has that many and the others are sized the same way.
    /// rho = 0 gives the class-incremental split (10 classes in 3 tasks: 4, 3, 3); rho = 1 puts every class in every task.
    /// </summary>
    public static (int[] Sizes, int[] Repeated) TaskLayout(int classCount, int taskCount, int? firstTaskClasses = null, double overlap = 0)
    {
        if (taskCount < 1 || (overlap == 0 && taskCount > classCount))
            throw new ContinualMoEException($"task count {taskCount} must be between 1 and the number of classes ({classCount})");
        int Repeated(int size) => (int)Math.Round(overlap * size, MidpointRounding.AwayFromZero);
        int New(int size) => size - Repeated(size);
        var sizes = new int[taskCount];
        var first = 0;
        var remaining = classCount;
        if (firstTaskClasses is { } f)
        {
            if (f < 1 || f > classCount)
                throw new ContinualMoEException($"first task classes {f} must be between 1 and the number of classes ({classCount})");
            if (taskCount == 1 && f != classCount)
                throw new ContinualMoEException($"with one task the first task must hold all {classCount} classes, not {f}");
            sizes[0] = f;
            first = 1;
            remaining -= f;
        }
        var rest = taskCount - first;
        if (rest > 0)
        {
            // New classes introduced if the tasks first..T-1 all have size k (the first of them is all new without a fixed first task).
            int Introduced(int k) => k == 0 ? 0 : first == 0 ? k + (rest - 1) * New(k) : rest * New(k);
            var size = 1;
            while (size <= classCount && Introduced(size) < remaining) size++;
            if (size > classCount)
                throw new ContinualMoEException(overlap >= 1
                    ? $"overlap 1 repeats every class, so the first task must hold all {classCount} classes, not {sizes[0]}"
                    : $"{taskCount} tasks with first task classes {sizes[0]} and overlap {overlap} cannot introduce all {classCount} classes");
            // Start every task one smaller, then enlarge tasks in order until exactly all classes are introduced.
            for (var t = first; t < taskCount; t++) sizes[t] = size - 1;
            var introduced = Introduced(size - 1);
            // (When enlarging a later task adds no new class, as with rho = 1, every task is enlarged.)
            for (var t = first; t < taskCount; t++)
            {
                var gain = t == 0 ? 1 : New(size) - New(size - 1);
                if (gain > 0 && introduced >= remaining) continue;
                introduced += gain;
                sizes[t] = size;
            }
            // Every class is in the first task: with rho = 1 the later tasks repeat all of them.
            if (first == 1 && remaining == 0 && overlap >= 1)
                for (var t = 1; t < taskCount; t++) sizes[t] = sizes[0];
        }
        var repeated = sizes.Select((s, t) => t == 0 ? 0 : Repeated(s)).ToArray();
        var seen = sizes[0];
        for (var t = 0; t < taskCount; t++)
        {
            if (sizes[t] < 1)
                throw new ContinualMoEException($"task {t + 1} would have no classes ({classCount} classes, {taskCount} tasks, overlap {overlap}): use fewer tasks");
            if (t == 0) continue;
            if (repeated[t] > seen)
                throw new ContinualMoEException($"overlap {overlap}: task {t + 1} needs {repeated[t]} classes from earlier tasks but only {seen} were seen: use fewer first task classes or a lower overlap");
            seen += sizes[t] - repeated[t];
        }
        return (sizes, repeated);
    }

    /// <summary>Each task's classes: its repeated classes drawn uniformly from the classes seen before it, then the next
    /// new classes of the order. Sorted.</summary>
    private static List<int[]> AssignClasses((int[] Sizes, int[] Repeated) layout, int seed)
    {
        var result = new List<int[]>();
        var next = 0;
        for (var t = 0; t < layout.Sizes.Length; t++)
        {
            var repeated = layout.Repeated[t];
            var earlier = Enumerable.Range(0, next).ToArray();
            if (repeated > 0) Seeds.Shuffle(new Random(Seeds.Combine(seed, t, 0x0E1A)), earlier);
            var fresh = layout.Sizes[t] - repeated;
            result.Add([.. earlier.Take(repeated).Concat(Enumerable.Range(next, fresh)).Order()]);
            next += fresh;
        }
        return result;
    }

    /// <summary>
    /// Each task's training images (indices into <paramref name="train"/>): a class that is in m tasks has its images
    /// shuffled (seeded by class) and cut into m near-equal disjoint parts, one per task in task order, so a class seen
    /// again comes with fresh images; with shots n, each part keeps its first n images.
    /// </summary>
    private static List<int>[] SplitSamples(IImageDataset train, int[] labels, List<int[]> classes, ScenarioSettings settings)
    {
        var classCount = train.ClassNames.Count;
        var byClass = Enumerable.Range(0, classCount).Select(_ => new List<int>()).ToArray();
        for (var i = 0; i < labels.Length; i++) byClass[labels[i]].Add(i);
        var tasksOfClass = Enumerable.Range(0, classCount).Select(_ => new List<int>()).ToArray();
        for (var t = 0; t < classes.Count; t++)
            foreach (var c in classes[t]) tasksOfClass[c].Add(t);

        var result = classes.Select(_ => new List<int>()).ToArray();
        for (var c = 0; c < classCount; c++)
        {
            var tasks = tasksOfClass[c];
            if (tasks.Count == 0) continue;
            var images = byClass[c].ToArray();
            if (tasks.Count == 1 && settings.Shots is null)
            {
                result[tasks[0]].AddRange(images);
                continue;
            }
            Seeds.Shuffle(new Random(Seeds.Combine(settings.Seed, c, 0x5407)), images);
            var start = 0;
            for (var j = 0; j < tasks.Count; j++)
            {
                var part = images.Length / tasks.Count + (j < images.Length % tasks.Count ? 1 : 0);
                if (settings.Shots is int shots && shots > part)
                    throw new ContinualMoEException($"shots {shots} is more than the {part} training images class '{train.ClassNames[c]}' has for task {tasks[j] + 1}" +
                                                    (tasks.Count > 1 ? $" (its {images.Length} images are split over the {tasks.Count} tasks that hold it)" : ""));
                result[tasks[j]].AddRange(images.Skip(start).Take(settings.Shots ?? part));
                start += part;
            }
        }
        return result;
    }

    /// <summary>
    /// Blurry tasks: each task t gives away m_t = round(b · N_t) of its N_t training images (drawn at random, always
    /// keeping at least one image of each of its classes) and receives m_t images given away by other tasks, so exactly
    /// m_t / N_t of its training images are of other tasks' classes (earlier or later ones). Removes the given images
    /// from <paramref name="samples"/> and returns the images each task receives.
    /// </summary>
    private static List<int>[] Blur(List<int>[] samples, int[] labels, ScenarioSettings settings)
    {
        var taskCount = samples.Length;
        if (taskCount < 2) throw new ContinualMoEException("a blurry scenario needs at least 2 tasks");
        var donations = new List<(int Index, int Task)>();
        var quota = new int[taskCount];
        for (var t = 0; t < taskCount; t++)
        {
            var own = samples[t];
            quota[t] = (int)Math.Round(settings.Blurry * own.Count, MidpointRounding.AwayFromZero);
            var keptOne = new HashSet<int>();
            var candidates = own.Where(i => !keptOne.Add(labels[i])).ToArray();
            if (quota[t] > candidates.Length)
                throw new ContinualMoEException($"blurry {settings.Blurry}: task {t + 1} would give away {quota[t]} of its {own.Count} training images, leaving a class without any: lower the blurry fraction or raise shots");
            Seeds.Shuffle(new Random(Seeds.Combine(settings.Seed, t, 0xB1)), candidates);
            var given = candidates.Take(quota[t]).ToHashSet();
            donations.AddRange(given.Order().Select(i => (i, t)));
            samples[t] = own.Where(i => !given.Contains(i)).ToList();
        }
        var total = donations.Count;
        for (var t = 0; t < taskCount; t++)
            if (2 * quota[t] > total)
                throw new ContinualMoEException($"blurry {settings.Blurry}: task {t + 1} needs {quota[t]} images of other tasks but they give only {total - quota[t]}: the tasks are too unequal in size");
        var pool = donations.ToArray();
        Seeds.Shuffle(new Random(Seeds.Combine(settings.Seed, 0xB2)), pool);
        var slots = Enumerable.Range(0, taskCount).SelectMany(t => Enumerable.Repeat(t, quota[t])).ToArray();
        // A task must not get its own images back: swap such a slot's image with one that fits both slots (one always
        // exists when no task needs more than half of all given images, checked above).
        for (var j = 0; j < total; j++)
        {
            if (pool[j].Task != slots[j]) continue;
            var k = Enumerable.Range(1, total - 1).Select(o => (j + o) % total)
                .First(k => pool[k].Task != slots[j] && slots[k] != pool[j].Task);
            (pool[j], pool[k]) = (pool[k], pool[j]);
        }
        var received = Enumerable.Range(0, taskCount).Select(_ => new List<int>()).ToArray();
        for (var j = 0; j < total; j++) received[slots[j]].Add(pool[j].Index);
        return received;
    }

    private int CheckLabel(int label) =>
        (uint)label < (uint)ClassCount ? label : throw new ArgumentOutOfRangeException(nameof(label), label, $"labels are 0..{ClassCount - 1}");

    private TaskData CheckTask(int task) =>
        (uint)task < (uint)Tasks.Count ? Tasks[task] : throw new ArgumentOutOfRangeException(nameof(task), task, $"tasks are 0..{Tasks.Count - 1}");
}
