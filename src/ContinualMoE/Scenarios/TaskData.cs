using ContinualMoE.Data;

namespace ContinualMoE.Scenarios;

/// <summary>
/// One task (experience) of a scenario. <see cref="Classes"/> are remapped labels (positions in the class order), and
/// the datasets' labels and class names use the same remapped label space over all the scenario's classes.
/// </summary>
public sealed record TaskData(int Index, IReadOnlyList<int> Classes, IImageDataset Train, IImageDataset Test);
