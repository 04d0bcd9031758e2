using ContinualMoE.Data;

namespace ContinualMoE.Scenarios;

/// <summary>
/// Splits a dataset's classes into a sequence of disjoint tasks (class-incremental learning, or task-incremental when
/// the task id is given at test time): the <see cref="ScenarioKinds.ClassIncremental"/> kind of
/// <see cref="ContinualScenario"/>, with every training image of a task's classes.
/// <para>
/// Labels are remapped to their position in the class order: the class at position p of the order gets label p, so task
/// t owns a contiguous label range and "the classes seen so far" is a label prefix. This is what PILOT and L2P's code
/// do; <see cref="ContinualScenario.OriginalClass"/> and <see cref="ContinualScenario.OriginalClassName"/> map back.
/// </para>
/// <para>
/// Classes are split evenly, extra classes going one each to the first tasks (10 classes in 3 tasks: 4, 3, 3); with
/// <c>firstTaskClasses</c> the first task gets that many and the rest are split evenly over the remaining tasks
/// (e.g. 50 + 5 x 10 for CIFAR-100 "B50 Inc10").
/// </para>
/// </summary>
public sealed class ClassIncrementalScenario : ContinualScenario
{
    private ClassIncrementalScenario(ContinualScenario built) : base(built) { }

    /// <param name="data">The dataset; its class ids are 0..ClassCount-1.</param>
    /// <param name="taskCount">Number of tasks (1..ClassCount).</param>
    /// <param name="seed">Seeds the random class order (<see cref="Scenarios.ClassOrder.Random"/>); ignored with an explicit order.</param>
    /// <param name="firstTaskClasses">Classes in the first task; null splits all classes evenly.</param>
    /// <param name="classOrder">Explicit order of original class ids (e.g. from <see cref="Scenarios.ClassOrder.ReadFile"/>).</param>
    /// <param name="taskIncremental">Marks the scenario task-incremental (the learner may use the task id at test time).</param>
    public static ClassIncrementalScenario Create(DatasetSplits data, int taskCount, int seed, int? firstTaskClasses = null,
        IReadOnlyList<int>? classOrder = null, bool taskIncremental = false) =>
        new(Create(data, new ScenarioSettings
        {
            Kind = ScenarioKinds.ClassIncremental, Tasks = taskCount, Seed = seed, FirstTaskClasses = firstTaskClasses,
            ClassOrder = classOrder, TaskIncremental = taskIncremental,
        }));

    /// <summary>How many classes each task gets (see the class summary).</summary>
    public static int[] TaskSizes(int classCount, int taskCount, int? firstTaskClasses = null) =>
        TaskLayout(classCount, taskCount, firstTaskClasses).Sizes;

    /// <summary>The task that owns label <paramref name="label"/>.</summary>
    public int TaskOfClass(int label) => TasksOfClass(label)[0];
}
