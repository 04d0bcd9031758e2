using System.Security.Cryptography;
using TorchSharp;

namespace ContinualMoE.Backbones;

/// <summary>SHA-256 over a frozen backbone's tensors (names and bytes, in name order). Resuming a run or loading a model
/// package on other weights would silently mix two backbones, so both compare this.</summary>
public static class BackboneFingerprint
{
    public static string Sha256(torch.nn.Module backbone)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (name, tensor) in backbone.state_dict().OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            sha.AppendData(System.Text.Encoding.UTF8.GetBytes(name));
            using var cpu = tensor.detach().cpu().contiguous();
            sha.AppendData(cpu.bytes);
        }
        return Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
    }
}
