using ContinualMoE.Data;

namespace ContinualMoE.Scenarios;

/// <summary>
/// One task (experience) of a scenario. <see cref="Classes"/> are the labels in its training set; the datasets' labels
/// and class names use the scenario's label space (positions in the class order over all its classes).
/// <see cref="TestClasses"/> are the classes whose test images form <see cref="Test"/> (the task's row of the accuracy
/// matrix): the same as <see cref="Classes"/> except in blurry scenarios, where a task's training set also holds a few
/// samples of other tasks' classes.
/// </summary>
public sealed record TaskData(int Index, IReadOnlyList<int> Classes, ILabelledDataset Train, ILabelledDataset Test)
{
    public IReadOnlyList<int> TestClasses { get; init; } = Classes;
}
