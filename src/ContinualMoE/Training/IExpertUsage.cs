using static TorchSharp.torch;

namespace ContinualMoE.Training;

/// <summary>Implemented by learners with routed experts, so runs can plot how often each expert is chosen.</summary>
public interface IExpertUsage
{
    /// <summary>Backbone blocks that hold experts, in the order of the first dimension of <see cref="ExpertFrequencies"/>.</summary>
    IReadOnlyList<int> ExpertBlocks { get; }

    /// <summary>Selection counts accumulated over the training data of all finished tasks: [blocks, heads, experts].</summary>
    Tensor ExpertFrequencies { get; }
}
