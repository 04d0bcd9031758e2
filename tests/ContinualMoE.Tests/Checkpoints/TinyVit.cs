using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Checkpoints;

/// <summary>
/// Parameters only (no forward) of a tiny ViT laid out with timm's names: enough to test name mapping and loading.
/// Field names become parameter names, so they follow timm's snake_case.
/// </summary>
internal sealed class TinyVit : nn.Module
{
    public const int Dim = 8, Heads = 2, Depth = 2, Patch = 2, Patches = 4;

    public Parameter cls_token;
    public Parameter pos_embed;
    public TinyPatchEmbed patch_embed;
    public ModuleList<TinyBlock> blocks;
    public LayerNorm norm;
    public Linear head;

    public TinyVit(int classes = 5, int patches = Patches) : base(nameof(TinyVit))
    {
        cls_token = new Parameter(randn(1, 1, Dim));
        pos_embed = new Parameter(randn(1, 1 + patches, Dim));
        patch_embed = new TinyPatchEmbed();
        blocks = nn.ModuleList(Enumerable.Range(0, Depth).Select(_ => new TinyBlock()).ToArray());
        norm = nn.LayerNorm(Dim);
        head = nn.Linear(Dim, classes);
        RegisterComponents();
        // LayerNorm starts at ones/zeros; randomise everything so a skipped or misplaced copy shows up.
        using (no_grad())
            foreach (var (_, p) in named_parameters()) p.copy_(randn(p.shape));
    }
}

internal sealed class TinyPatchEmbed : nn.Module
{
    public Conv2d proj = nn.Conv2d(3, TinyVit.Dim, TinyVit.Patch, stride: TinyVit.Patch);
    public TinyPatchEmbed() : base(nameof(TinyPatchEmbed)) => RegisterComponents();
}

internal sealed class TinyBlock : nn.Module
{
    public LayerNorm norm1 = nn.LayerNorm(TinyVit.Dim);
    public TinyAttention attn = new();
    public LayerNorm norm2 = nn.LayerNorm(TinyVit.Dim);
    public TinyMlp mlp = new();
    public TinyBlock() : base(nameof(TinyBlock)) => RegisterComponents();
}

internal sealed class TinyAttention : nn.Module
{
    public Linear qkv = nn.Linear(TinyVit.Dim, 3 * TinyVit.Dim);
    public Linear proj = nn.Linear(TinyVit.Dim, TinyVit.Dim);
    public TinyAttention() : base(nameof(TinyAttention)) => RegisterComponents();
}

internal sealed class TinyMlp : nn.Module
{
    public Linear fc1 = nn.Linear(TinyVit.Dim, 4 * TinyVit.Dim);
    public Linear fc2 = nn.Linear(4 * TinyVit.Dim, TinyVit.Dim);
    public TinyMlp() : base(nameof(TinyMlp)) => RegisterComponents();
}
