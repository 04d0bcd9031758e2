namespace ContinualMoE.Training;

/// <summary>
/// A learner whose one-task run (the forward-transfer reference) is the same training as other methods' one-task runs,
/// e.g. EWC-LoRA and O-LoRA, which on a first task have nothing to anchor to or be orthogonal to and train plain LoRA.
/// Learners that say nothing are keyed by their method name and settings.
/// </summary>
public interface ITaskAloneEquivalent
{
    /// <summary>Names the learner trained alone and everything of its settings that its one-task run depends on; equal
    /// strings mean equal one-task runs (given the same data, backbone, seed and training settings).</summary>
    string TaskAloneLearner { get; }
}
