using ContinualMoE.Backbones;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Prompts;

/// <summary>How the prompts of a batch are laid out for the attention.</summary>
public enum PromptBatchLayout
{
    /// <summary>Sample b gets its own task's key prefix and value prefix (gathered, then permuted). The project's default.</summary>
    PerSample,

    /// <summary>
    /// What the official HiDe-Prompt / NoRGa code computes: <c>EPrompt.forward</c> (peft/prompt/hide_prompt.py,
    /// norga_prompt.py) gathers the prompts as [layers, 2, B, 1, L, H, d] and then <c>reshape</c>s them to
    /// [layers, B, 2, L, H, d], which reinterprets memory instead of swapping axes. Sample b therefore receives entries
    /// 2b and 2b+1 of the flattened (key/value, sample) axis: with one task for the whole batch (training, statistics)
    /// the first half of the batch uses the task's key prompt as both key and value prefix and the second half its value
    /// prompt for both; at test time sample b's prefix is that of the task predicted for sample 2b mod B.
    /// </summary>
    OfficialReshape,
}

/// <summary>
/// HiDe-Prompt's task-specific prefix prompts (Wang et al., NeurIPS 2023): one prompt per task in each prompted block,
/// a prefix of <see cref="Length"/> keys and values given directly in the per-head projected space, initialised
/// uniform(-1, 1). Stored as one parameter [layers, 2 (key, value), tasks, L, H, d] like the official code.
///
/// As a provider it runs in one of two modes: <see cref="UseTask"/> (one prompt for the whole batch, optionally mixed with
/// the detached mean of the previous tasks' prompts: HiDe's prompt momentum) or <see cref="UsePerSample"/> (each sample's
/// own task prompt, gathered with index_select and laid out with permute, never reshape across batch and key/value).
/// An optional <see cref="NonLinearResidualGate"/> turns it into NoRGa. <see cref="Layout"/> chooses between each sample's
/// own prefix and the official code's batch reshape (<see cref="PromptBatchLayout"/>).
/// </summary>
public sealed class TaskPrefixPrompts : nn.Module, IAttentionPrefixProvider
{
    private readonly Parameter prompts; // [layers, 2, T, L, H, d]
    private readonly Dictionary<int, int> layerOfBlock;
    private int? task;
    private double momentum;
    private Tensor? sampleTasks;

    public IReadOnlyList<int> Blocks { get; }
    public int Tasks { get; }
    public int Length { get; }
    public int Heads { get; }
    public int HeadDim { get; }
    public NonLinearResidualGate? Gate { get; }
    public PromptBatchLayout Layout { get; }

    public TaskPrefixPrompts(IReadOnlyList<int> blocks, int tasks, int length, int heads, int headDim, NonLinearResidualGate? gate = null,
        PromptBatchLayout layout = PromptBatchLayout.PerSample)
        : base(nameof(TaskPrefixPrompts))
    {
        Layout = layout;
        Blocks = blocks;
        Tasks = tasks;
        Length = length;
        Heads = heads;
        HeadDim = headDim;
        Gate = gate;
        layerOfBlock = blocks.Select((b, i) => (b, i)).ToDictionary(x => x.b, x => x.i);
        prompts = new Parameter(empty(new long[] { blocks.Count, 2, tasks, length, heads, headDim }));
        using (no_grad()) nn.init.uniform_(prompts, -1, 1);
        register_parameter("prompts", prompts);
        if (gate is not null) register_module("gate", gate);
    }

    public Parameter Prompts => prompts;

    /// <summary>Parameters added by every task: one key and one value prefix per prompted layer.</summary>
    public long ParametersPerTask => (long)Blocks.Count * 2 * Length * Heads * HeadDim;

    /// <summary>Every sample uses task <paramref name="taskIndex"/>'s prompt; with <paramref name="promptMomentum"/> m &gt; 0 and
    /// earlier tasks, the prompt is (1 - m) P_t + m mean(P_&lt;t) with the mean detached.</summary>
    public void UseTask(int taskIndex, double promptMomentum = 0)
    {
        task = taskIndex;
        momentum = promptMomentum;
        sampleTasks = null;
    }

    /// <summary>Sample b uses the prompt of task <paramref name="tasks"/>[b] (int64 [B]). The tensor must outlive the forward pass.</summary>
    public void UsePerSample(Tensor tasks)
    {
        task = null;
        sampleTasks = tasks;
    }

    /// <summary>Task t's prompt as trained: [layers, 2, L, H, d], with the momentum mix when it applies.</summary>
    public Tensor TaskPrompt(int taskIndex, double promptMomentum)
    {
        var own = prompts.select(2, taskIndex);
        if (promptMomentum <= 0 || taskIndex == 0) return own;
        Tensor previous;
        using (no_grad()) previous = prompts.narrow(2, 0, taskIndex).mean([2]).detach();
        return own.mul(Scalars.Of(1 - promptMomentum)).Plus(previous.mul(Scalars.Of(promptMomentum)));
    }

    /// <summary>Writes the momentum mix into P_t (after the task, as the official code does).</summary>
    public void CommitMomentum(int taskIndex, double promptMomentum)
    {
        if (promptMomentum <= 0 || taskIndex == 0) return;
        using var noGrad = no_grad();
        using var mixed = TaskPrompt(taskIndex, promptMomentum).detach().clone();
        prompts.select(2, taskIndex).copy_(mixed);
    }

    /// <summary>Initialises task t's prompt as a copy of task t-1's (official: shared prompt pool transfer).</summary>
    public void CopyFromPrevious(int taskIndex)
    {
        if (taskIndex == 0) return;
        using var noGrad = no_grad();
        prompts.select(2, taskIndex).copy_(prompts.select(2, taskIndex - 1));
    }

    public AttentionPrefix? ForBlock(int blockIndex, Tensor queries)
    {
        if (!layerOfBlock.TryGetValue(blockIndex, out var layer)) return null;
        Tensor pairs; // [2 (key, value), B|1, L, H, d]
        if (sampleTasks is not null) pairs = prompts.select(0, layer).index_select(1, sampleTasks);
        else if (task is int t) pairs = TaskPrompt(t, momentum).select(0, layer).unsqueeze(1);
        else throw new InvalidOperationException("TaskPrefixPrompts: call UseTask or UsePerSample before the forward pass");
        if (Layout == PromptBatchLayout.OfficialReshape)
        {
            // The official [2, B, ...] -> [B, 2, ...] reshape (see PromptBatchLayout.OfficialReshape), then back to [2, B, ...].
            var batch = queries.shape[0];
            pairs = pairs.expand(2, batch, Length, Heads, HeadDim).contiguous()
                .reshape(batch, 2, Length, Heads, HeadDim).transpose(0, 1);
        }
        // [2, B, L, H, d] -> [2, B, H, L, d]: permute, never reshape, across batch and key/value.
        var laidOut = pairs.permute(0, 1, 3, 2, 4);
        return new AttentionPrefix { Keys = laidOut.select(0, 0), Values = laidOut.select(0, 1), LogitTransform = Gate?.For(layer) };
    }
}
