namespace ContinualMoE.Experiments;

/// <summary>
/// Forward-transfer references (a task's accuracy when trained alone, <see cref="Experiment.TaskAloneAccuracies"/>)
/// already computed in this process, by what determines them (<see cref="Experiment.TaskAloneKey"/>): a compare of
/// methods whose one-task runs are the same learner (sequential, EWC and O-LoRA all train one plain LoRA on a first
/// task) trains each reference once and gives every method the same values it would compute alone.
/// </summary>
public sealed class TaskAloneReferences
{
    private readonly Dictionary<string, double> accuracies = [];

    /// <summary>Task-alone runs trained so far through this cache.</summary>
    public int Trained { get; private set; }
    /// <summary>Task-alone accuracies served from an earlier run instead of trained again.</summary>
    public int Reused { get; private set; }

    internal bool TryGet(string key, out double accuracy)
    {
        if (!accuracies.TryGetValue(key, out accuracy)) return false;
        Reused++;
        return true;
    }

    internal void Add(string key, double accuracy)
    {
        accuracies[key] = accuracy;
        Trained++;
    }
}
